//! `cargo xtask volumes`: the data disks `run-*` keeps the apps' named
//! volumes on (run::data), listed with what they take on the host, and
//! removed as `docker compose down -v` removes a project's volumes. Nothing
//! is built or booted, and nothing but those disk files is touched.

use std::{path::PathBuf, time::SystemTime};

use anyhow::{bail, Context, Result};

use crate::{
    base::ui::say,
    run::data::{self, Disk, Selection},
};

/// What `volumes rm` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Disks of the default folder: one project's, or all (see [`Selection`]).
    Folder(Selection),
    /// One disk file, given by path (a `--data-disk` one).
    Path(PathBuf),
}

/// `volumes` / `volumes ls`: one aligned line per data disk of the default
/// folder, then their total on the host.
pub fn list() -> Result<()> {
    let dir = data::folder()?;
    let disks = data::list(&dir)?;
    if disks.is_empty() {
        say!("no data disks in {}", dir.display());
        return Ok(());
    }
    let mut rows = vec![["PROJECT", "METHOD", "ON HOST", "SIZE", "MODIFIED", "IN USE", "PATH"]
        .map(String::from)
        .to_vec()];
    for disk in &disks {
        let (project, method) = disk.owner.clone().unwrap_or(("-".into(), "-".into()));
        // Asked now: a VM started or stopped since the listing began shows as it is.
        let held = data::in_use(&disk.path)?.map_or("no", |_| "yes (a VM)");
        rows.push(vec![
            project,
            method,
            data::size(disk.allocated),
            data::size(disk.apparent),
            clock(disk.modified),
            held.to_string(),
            disk.path.display().to_string(),
        ]);
    }
    for line in data::table(&rows) {
        say!("{line}");
    }
    let total: u64 = disks.iter().map(|d| d.allocated).sum();
    say!(
        "{} data disk{}, {} on the host, in {} (`cargo xtask volumes rm --help` says how to remove them)",
        disks.len(),
        if disks.len() == 1 { "" } else { "s" },
        data::size(total),
        dir.display()
    );
    Ok(())
}

/// `volumes rm`: remove the disks `target` names, each said first. A disk a
/// VM holds refuses the whole removal, before anything goes.
pub fn remove(target: &Target) -> Result<()> {
    let disks = match target {
        Target::Folder(selection) => {
            let dir = data::folder()?;
            let all = data::list(&dir)?;
            let chosen: Vec<Disk> = selection.chosen(&all).into_iter().cloned().collect();
            if chosen.is_empty() {
                say!("{} in {}: nothing to remove", described(selection), dir.display());
                return Ok(());
            }
            chosen
        }
        Target::Path(path) => {
            if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
                say!("no data disk at {}: nothing to remove", path.display());
                return Ok(());
            }
            let disk = Disk::at(path)?;
            // A path can name any file: only what a VM made of a data disk goes.
            if !data::holds_data_disk(path)? {
                bail!(
                    "{} is not a data disk (neither blank nor an ext4 file system labelled compose-data): not removed",
                    path.display()
                );
            }
            vec![disk]
        }
    };
    // Every disk locked first (none held by a VM), so that either all go or none.
    let mut claims = Vec::new();
    let mut held = Vec::new();
    for disk in &disks {
        match data::claim(&disk.path)? {
            Some(file) => claims.push(file),
            None => held.push(disk.path.display().to_string()),
        }
    }
    if !held.is_empty() {
        bail!(
            "data disk {} {} in use by a running VM: stop it first (nothing was removed)",
            held.join(", "),
            if held.len() == 1 { "is" } else { "are" }
        );
    }
    for disk in &disks {
        say!(
            "removing {} ({} on the host, {} as a disk){}",
            disk.path.display(),
            data::size(disk.allocated),
            data::size(disk.apparent),
            match &disk.owner {
                Some((project, method)) => format!(": compose project {project}, {method}"),
                None => String::new(),
            }
        );
        std::fs::remove_file(&disk.path).with_context(|| format!("removing {}", disk.path.display()))?;
    }
    drop(claims);
    let freed: u64 = disks.iter().map(|d| d.allocated).sum();
    say!(
        "removed {} data disk{}, {} freed",
        disks.len(),
        if disks.len() == 1 { "" } else { "s" },
        data::size(freed)
    );
    Ok(())
}

/// That nothing matches the selection, in words, for "… in DIR".
fn described(selection: &Selection) -> String {
    let method = selection
        .method
        .as_deref()
        .map(|m| format!(" for the {m} method"))
        .unwrap_or_default();
    match &selection.project {
        Some(project) => format!("no data disk of compose project {project}{method}"),
        None if method.is_empty() => "no data disks".to_string(),
        None => format!("no data disk{method}"),
    }
}

/// `t` in local time, as `ls -l` would show it: `2025-06-01 14:03`.
fn clock(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: a zeroed `tm` is a valid value for localtime_r(3) to fill.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r(3) with valid pointers to a time and a `tm`.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return "?".to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_selection_is_said_plainly() {
        let s = |project: Option<&str>, method: Option<&str>| Selection {
            project: project.map(String::from),
            method: method.map(String::from),
        };
        assert_eq!(
            described(&s(Some("shop"), None)),
            "no data disk of compose project shop"
        );
        assert_eq!(
            described(&s(Some("shop"), Some("native"))),
            "no data disk of compose project shop for the native method"
        );
        assert_eq!(
            described(&s(None, Some("static"))),
            "no data disk for the static method"
        );
        assert_eq!(described(&s(None, None)), "no data disks");
    }

    #[test]
    fn times_are_minutes() {
        let c = clock(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        assert_eq!(c.len(), "2023-11-14 22:13".len(), "{c}");
        assert!(c.starts_with("2023-11-1"), "{c}");
    }
}
