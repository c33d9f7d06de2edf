//! `dist/SHA256SUMS`: the SHA-256 of every VM artifact in `dist/` (each
//! VM's kernel, initrd, roots disk and SBOM, its disk images and ISOs, and the app's image tarballs), in `sha256sum`'s
//! format, so `cd dist && sha256sum -c SHA256SUMS` checks them. Rewritten
//! after every build; a file whose size and mtime did not change is not read
//! again (`dist/.SHA256SUMS.cache`).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use anyhow::Result;

use crate::base::{files, project::Project, ui};

const SUMS: &str = "SHA256SUMS";
const CACHE: &str = ".SHA256SUMS.cache";

/// What `dist/SHA256SUMS` lists, relative to `dist`: final artifacts only
/// (not the base initrds the packed ones are made from).
fn artifacts(dist: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dist)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let image = [".iso", ".qcow2", "-bios.img", "-efi.img"]
            .iter()
            .any(|s| name.ends_with(s));
        let artifact = image
            || name.ends_with("-kernel")
            || (name.ends_with("-initrd.img") && !name.ends_with("-base-initrd.img"))
            || name.ends_with("-roots.img")
            || name.ends_with(".spdx.json");
        if artifact {
            out.push(PathBuf::from(name));
        }
    }
    if let Ok(images) = fs::read_dir(dist.join("images")) {
        for entry in images {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tar") {
                out.push(Path::new("images").join(name));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Rewrite `dist/SHA256SUMS` for what `dist/` holds now.
pub fn write(project: &Project) -> Result<()> {
    let dist = &project.dist;
    let cache_path = dist.join(CACHE);
    let old: BTreeMap<String, (u64, u128, String)> = fs::read_to_string(&cache_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut new = BTreeMap::new();
    let mut text = String::new();
    for rel in artifacts(dist)? {
        let path = dist.join(&rel);
        let meta = fs::metadata(&path)?;
        let mtime = meta.modified()?.duration_since(UNIX_EPOCH)?.as_nanos();
        let key = rel.display().to_string();
        let sum = match old.get(&key) {
            Some((len, at, sum)) if *len == meta.len() && *at == mtime => sum.clone(),
            _ => files::sha256(&path)?,
        };
        text += &format!("{sum}  {key}\n");
        new.insert(key, (meta.len(), mtime, sum));
    }
    if files::write_if_changed(&dist.join(SUMS), text.as_bytes())? {
        ui::note(format!(
            "{} ({} files; check with `cd dist && sha256sum -c {SUMS}`)",
            project.rel(&dist.join(SUMS)).display(),
            new.len()
        ));
    }
    files::write_atomic(&cache_path, serde_json::to_string(&new)?.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TestDir;

    /// The sums are `sha256sum`'s, of the final artifacts only, and a file
    /// that changes gets its new sum even when the cache knew the old one.
    #[test]
    fn sums_of_the_artifacts_as_sha256sum_writes_them() {
        let dir = TestDir::new("sums");
        fs::create_dir_all(dir.join("images")).unwrap();
        for (name, body) in [
            ("vm-kernel", "k"),
            ("vm.spdx.json", "s"),
            ("vm-initrd.img", "i"),
            ("vm-roots.img", "r"),
            ("vm-base-initrd.img", "b"),
            ("vm.yml", "y"),
            ("vm-efi.img", "e"),
            ("vm-efi.img.partial", "half an image"),
            ("vm-bios.qcow2", "q"),
            ("vm-efi.iso", "o"),
            ("images/app.tar", "t"),
        ] {
            fs::write(dir.join(name), body).unwrap();
        }
        let mut project = crate::base::project::for_tests();
        project.dist = dir.to_path_buf();
        write(&project).unwrap();
        let sums = fs::read_to_string(dir.join(SUMS)).unwrap();
        let out = std::process::Command::new("sha256sum")
            .args([
                "images/app.tar",
                "vm-bios.qcow2",
                "vm-efi.img",
                "vm-efi.iso",
                "vm-initrd.img",
                "vm-kernel",
                "vm-roots.img",
                "vm.spdx.json",
            ])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(sums, String::from_utf8(out.stdout).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(dir.join("vm-kernel"), "changed").unwrap();
        write(&project).unwrap();
        let sums = fs::read_to_string(dir.join(SUMS)).unwrap();
        assert!(sums.contains(&files::sha256(&dir.join("vm-kernel")).unwrap()), "{sums}");
    }
}
