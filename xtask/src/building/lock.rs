//! Refreshing and using `pins.lock` (its data is `base::lock`): `cargo xtask
//! lock` resolves each image's packages from pins.yml against the mirror's
//! signed package index and writes the lock; builds pin apt to it and check the
//! bytes apt fetched against it.

use std::{collections::BTreeMap, fs};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::base::{
    exec, files,
    lock::{Deb, Lock, FILE, REFRESH},
    pins::ImagePins,
    project::Project,
    ui,
};

/// The keyring the mirror's InRelease files are checked with.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// What moved between two locks, a line per package and image.
pub fn changes(old: &Lock, new: &Lock) -> Vec<String> {
    let mut out = Vec::new();
    if old.source_date_epoch != new.source_date_epoch {
        out.push(format!(
            "source_date_epoch {} -> {}",
            old.source_date_epoch, new.source_date_epoch
        ));
    }
    let names: std::collections::BTreeSet<&String> = old.images.keys().chain(new.images.keys()).collect();
    for name in names {
        let by_name = |lock: &Lock| -> BTreeMap<String, Deb> {
            lock.images
                .get(name)
                .into_iter()
                .flatten()
                .map(|d| (d.package.clone(), d.clone()))
                .collect()
        };
        let (before, after) = (by_name(old), by_name(new));
        for (package, deb) in &after {
            match before.get(package) {
                None => out.push(format!("{name}: + {package} {}", deb.version)),
                Some(was) if was.version != deb.version => {
                    out.push(format!("{name}: {package} {} -> {}", was.version, deb.version))
                }
                Some(was) if was != deb => out.push(format!("{name}: {package} {} (new bytes)", deb.version)),
                Some(_) => {}
            }
        }
        for (package, deb) in &before {
            if !after.contains_key(package) {
                out.push(format!("{name}: - {package} {}", deb.version));
            }
        }
    }
    out
}

/// (package, version, arch) of every `Inst` line apt-get --simulate printed,
/// each package once.
pub fn simulated_installs(text: &str) -> Vec<(String, String, String)> {
    let mut seen = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("Inst ") else {
            continue;
        };
        let Some((package, rest)) = rest.split_once(" (") else {
            continue;
        };
        let version = rest.split_whitespace().next().unwrap_or_default();
        let arch = rest
            .split_once('[')
            .and_then(|(_, a)| a.split_once(']'))
            .map_or("", |(a, _)| a);
        seen.entry(package.to_string())
            .or_insert((version.to_string(), arch.to_string()));
    }
    seen.into_iter().map(|(p, (v, a))| (p, v, a)).collect()
}

/// A suite's Packages index: (package, version, arch) -> the package.
pub type Index = BTreeMap<(String, String, String), Deb>;

/// Parse a Packages file (or several, concatenated).
pub fn parse_index(text: &str) -> Index {
    let mut index = Index::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| super::debian::control_field(stanza, name);
        let (Some(package), Some(version), Some(arch), Some(sha256), Some(filename)) = (
            field("Package"),
            field("Version"),
            field("Architecture"),
            field("SHA256"),
            field("Filename"),
        ) else {
            continue;
        };
        // `Source: name` or `Source: name (version)`; absent: the package's own.
        let (source, source_version) = match field("Source") {
            None => (package.clone(), version.clone()),
            Some(s) => match s.split_once(" (") {
                Some((name, v)) => (name.to_string(), v.trim_end_matches(')').to_string()),
                None => (s, version.clone()),
            },
        };
        let deb = Deb {
            package: package.clone(),
            version: version.clone(),
            arch: arch.clone(),
            source,
            source_version,
            sha256,
            filename,
        };
        index.insert((package, version, arch), deb);
    }
    index
}

/// The SHA-256 an InRelease file gives for `path` (say `main/binary-amd64/Packages.xz`).
pub fn release_sha256(release: &str, path: &str) -> Option<String> {
    let mut in_sha256 = false;
    for line in release.lines() {
        if !line.starts_with(' ') {
            in_sha256 = line.starts_with("SHA256:");
            continue;
        }
        let mut words = line.split_whitespace();
        if let (true, Some(sum), Some(_size), Some(p)) = (in_sha256, words.next(), words.next(), words.next()) {
            if p == path {
                return Some(sum.to_string());
            }
        }
    }
    None
}

/// The `Date:` field of a Release file.
pub fn release_date(release: &str) -> Option<String> {
    release
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .map(|d| d.trim().to_string())
}

/// Locked packages the index no longer serves with the locked bytes.
pub fn unserved<'a>(locked: &'a [Deb], index: &Index) -> Vec<&'a Deb> {
    locked
        .iter()
        .filter(|d| {
            index
                .get(&(d.package.clone(), d.version.clone(), d.arch.clone()))
                .is_none_or(|served| served.sha256 != d.sha256)
        })
        .collect()
}

/// Check what apt downloaded (`sha256sum` of the .debs in apt's archive
/// folder) against the lock: every .deb must be a locked package with its
/// locked bytes.
pub fn check_downloads(sha256sum_output: &str, locked: &[Deb]) -> Result<usize> {
    let by_name: BTreeMap<&str, &Deb> = locked.iter().map(|d| (d.package.as_str(), d)).collect();
    let mut problems = Vec::new();
    let mut count = 0;
    for line in sha256sum_output.lines() {
        let Some((sum, path)) = line.split_once("  ") else {
            continue;
        };
        let file = path.rsplit('/').next().unwrap_or(path);
        // apt's names: NAME_VERSION_ARCH.deb, with the epoch's ':' as %3a.
        let parts: Vec<&str> = file.trim_end_matches(".deb").split('_').collect();
        let [name, version, _arch] = parts[..] else {
            problems.push(format!("{file}: not a package file name"));
            continue;
        };
        let version = version.replace("%3a", ":");
        count += 1;
        match by_name.get(name) {
            None => problems.push(format!("{name} {version} was installed but is not in {FILE}")),
            Some(d) if d.version != version => {
                problems.push(format!("{name} {version} was installed, {FILE} locks {}", d.version))
            }
            Some(d) if d.sha256 != sum => {
                problems.push(format!("{name} {version} has sha256 {sum}, {FILE} locks {}", d.sha256))
            }
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        bail!(
            "the packages apt installed are not the locked ones:\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(count)
}

/// apt preferences that pin every locked package to its locked version (the
/// essential packages mmdebstrap picks itself included).
pub fn apt_preferences(locked: &[Deb]) -> String {
    locked
        .iter()
        .map(|d| {
            format!(
                "Package: {}\nPin: version {}\nPin-Priority: 1001\n\n",
                d.package, d.version
            )
        })
        .collect()
}

/// A dpkg status file for an unpacked (not configured) tree: `dpkg-query
/// --admindir=ROOT/var/lib/dpkg -W` lists exactly the locked packages.
pub fn dpkg_status(locked: &[Deb]) -> String {
    let mut out = String::new();
    for d in locked {
        out += &format!(
            "Package: {}\nStatus: install ok unpacked\nArchitecture: {}\n",
            d.package, d.arch
        );
        if d.source != d.package || d.source_version != d.version {
            out += &format!("Source: {} ({})\n", d.source, d.source_version);
        }
        out += &format!(
            "Maintainer: Debian <https://tracker.debian.org/pkg/{}>\nVersion: {}\n\
             Description: {} as pins.lock locks it, unpacked (not configured)\n\n",
            d.source, d.version, d.package
        );
    }
    out
}

/// The signed Packages index of `suite` (main, amd64) on the pinned mirror and
/// its Release date; the index is cached by its hash.
pub fn fetch_index(sh: &Shell, project: &Project, suite: &str) -> Result<(Index, String)> {
    let mirror = project.pins.debian.mirror.trim_end_matches('/');
    let dir = project.cache_path("debian-index");
    fs::create_dir_all(&dir)?;
    let release_path = dir.join(format!("{suite}-InRelease"));
    let url = format!("{mirror}/dists/{suite}/InRelease");
    exec::run(cmd!(sh, "curl -fsSL -o {release_path} {url}")).with_context(|| format!("fetching {url}"))?;
    exec::run(cmd!(sh, "gpgv --keyring {KEYRING} {release_path}"))
        .with_context(|| format!("checking the signature of {url}"))?;
    let release = fs::read_to_string(&release_path)?;
    let wanted = "main/binary-amd64/Packages.xz";
    let sum = release_sha256(&release, wanted).with_context(|| format!("{url} lists no {wanted}"))?;
    let date = release_date(&release).with_context(|| format!("{url} has no Date"))?;
    let packages = dir.join(format!("{sum}.Packages.xz"));
    if !packages.is_file() {
        let partial = packages.with_extension("partial");
        let url = format!("{mirror}/dists/{suite}/{wanted}");
        exec::run(cmd!(sh, "curl -fsSL -o {partial} {url}")).with_context(|| format!("fetching {url}"))?;
        let got = files::sha256(&partial)?;
        if got != sum {
            bail!("{url} has sha256 {got}, its signed InRelease says {sum}");
        }
        fs::rename(&partial, &packages)?;
    }
    let text = exec::read(cmd!(sh, "xz -dc {packages}")).context("unpacking the Packages index")?;
    Ok((parse_index(&text), date))
}

/// The packages apt would install for an image's pins, resolved by
/// mmdebstrap itself (`--simulate`), so the lock is what a build installs.
fn resolve(sh: &Shell, project: &Project, pins: &ImagePins) -> Result<Vec<(String, String, String)>> {
    let suite = project.pins.suite_of(pins);
    let mirror = &project.pins.debian.mirror;
    let include = format!("--include={}", pins.packages.join(","));
    let variant = match pins.variant.as_deref() {
        Some("minbase") => "--variant=minbase",
        _ => "--variant=extract",
    };
    let scratch = project.cache_path("build").join("lock-resolve");
    if scratch.exists() {
        fs::remove_dir_all(&scratch)?;
    }
    // mmdebstrap wants the target's folder to exist (a new cache has none).
    fs::create_dir_all(scratch.parent().expect("under the cache"))?;
    // apt-get prints its `Inst` lines on mmdebstrap's standard error.
    let out = cmd!(
        sh,
        "mmdebstrap --mode=root {variant} --simulate --verbose {include} {suite} {scratch} {mirror}"
    )
    .ignore_status()
    .output()?;
    let _ = fs::remove_dir_all(&scratch);
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        bail!(
            "mmdebstrap --simulate failed:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(simulated_installs(&text))
}

/// `cargo xtask lock`: resolve every image's packages against the mirror as it
/// is now, write pins.lock, and print what changed. With `only` (`--image`),
/// just those images; the rest of the lock, its epoch included, stays.
pub fn refresh(sh: &Shell, project: &Project, only: &[String]) -> Result<()> {
    if let Some(unknown) = only.iter().find(|name| !project.pins.images.contains_key(*name)) {
        bail!(
            "--image {unknown}: pins.yml has no image of that name (its images: {})",
            project.pins.images.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let mut indexes: BTreeMap<String, (Index, String)> = BTreeMap::new();
    let mut resolved = BTreeMap::new();
    let mut newest = 0u64;
    let wanted = |name: &String| only.is_empty() || only.contains(name);
    for (name, pins) in project.pins.images.iter().filter(|(name, _)| wanted(name)) {
        let suite = project.pins.suite_of(pins);
        if !indexes.contains_key(&suite) {
            let step = ui::step(format!("Debian {suite} package index"));
            let fetched = fetch_index(sh, project, &suite)?;
            let date = &fetched.1;
            let epoch: u64 = exec::read(cmd!(sh, "date -u -d {date} +%s"))?
                .parse()
                .context("reading the Release date")?;
            newest = newest.max(epoch);
            step.done_with(format!("{} packages, {}", fetched.0.len(), fetched.1));
            indexes.insert(suite.clone(), fetched);
        }
        let step = ui::step(format!("resolving image {name}: {}", pins.packages.join(" ")));
        let installs = resolve(sh, project, pins).with_context(|| format!("resolving image {name}'s packages"))?;
        let index = &indexes[&suite].0;
        let mut debs = Vec::new();
        for (package, version, arch) in installs {
            let deb = index
                .get(&(package.clone(), version.clone(), arch.clone()))
                .with_context(|| format!("{package} {version} ({arch}) is not in Debian {suite}'s main index"))?;
            debs.push(deb.clone());
        }
        step.done_with(format!("{} packages", debs.len()));
        resolved.insert(name.clone(), debs);
    }
    let old = &project.lock;
    let new = relocked(old, resolved, newest, !only.is_empty());
    let changed = changes(old, &new);
    let path = project.root.join(FILE);
    if files::write_if_changed(&path, new.render().as_bytes())? {
        ui::note(format!("wrote {FILE} ({} changes)", changed.len()));
    } else {
        ui::note(format!("{FILE} is current"));
    }
    for line in changed {
        println!("{line}");
    }
    Ok(())
}

/// The lock after a refresh resolved `resolved` (image -> its packages) from
/// indexes whose newest is dated `newest`: a whole new lock; or, `partial`
/// (`--image`), the old one with just those images replaced and its epoch
/// kept, which every image's files carry, so no other image's tag moves.
fn relocked(old: &Lock, resolved: BTreeMap<String, Vec<Deb>>, newest: u64, partial: bool) -> Lock {
    let mut new = match partial {
        true => old.clone(),
        false => Lock {
            source_date_epoch: newest,
            ..Lock::default()
        },
    };
    new.images.extend(resolved);
    new
}

/// Fail, before anything is built, if the mirror no longer serves a package
/// locked for one of `names` (images not yet in the cache): one error naming
/// every such package, its version, and the command that refreshes the lock.
pub fn check_served(sh: &Shell, project: &Project, names: &[String]) -> Result<()> {
    let mut by_suite: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for name in names {
        let pins = project.pins.image(name)?;
        project.lock.image(name)?;
        by_suite.entry(project.pins.suite_of(pins)).or_default().push(name);
    }
    let mut problems = Vec::new();
    for (suite, names) in by_suite {
        let (index, _) = fetch_index(sh, project, &suite)?;
        for name in names {
            for deb in unserved(project.lock.image(name)?, &index) {
                problems.push(format!(
                    "{} {} (image {name}): Debian {suite} on {} no longer serves it",
                    deb.package, deb.version, project.pins.debian.mirror
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "{FILE} locks packages the mirror no longer serves; nothing was built. \
             Run `{REFRESH}` to lock what it serves now.\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::lock::testing::{deb, lock};

    /// `lock --image NAME` replaces that image's packages and nothing else:
    /// the other images and the epoch (in every image's tag) stay; a whole
    /// refresh drops images pins.yml no longer has and takes the new epoch.
    #[test]
    fn a_partial_refresh_keeps_the_other_images_and_the_epoch() {
        let old = lock(&[
            ("nginx", &[deb("nginx-light", "1")]),
            ("redis", &[deb("redis-server", "7")]),
        ]);
        let resolved = |version: &str| BTreeMap::from([("nginx".to_string(), vec![deb("nginx-light", version)])]);
        let partial = relocked(&old, resolved("2"), 1_800_000_000, true);
        assert_eq!(partial.source_date_epoch, old.source_date_epoch);
        assert_eq!(partial.images["nginx"], [deb("nginx-light", "2")]);
        assert_eq!(partial.images["redis"], old.images["redis"]);
        assert_eq!(changes(&old, &partial), ["nginx: nginx-light 1 -> 2"]);
        let whole = relocked(&old, resolved("2"), 1_800_000_000, false);
        assert_eq!(whole.source_date_epoch, 1_800_000_000);
        assert_eq!(whole.images.keys().collect::<Vec<_>>(), ["nginx"]);
    }

    #[test]
    fn changes_name_each_package() {
        let old = lock(&[("nginx", &[deb("nginx-light", "1.26.3-3"), deb("libc6", "2.41-12")])]);
        let mut new = lock(&[("nginx", &[deb("nginx-light", "1.26.3-4"), deb("zlib1g", "1:1.3")])]);
        new.source_date_epoch += 1;
        assert_eq!(
            changes(&old, &new),
            [
                "source_date_epoch 1700000000 -> 1700000001",
                "nginx: nginx-light 1.26.3-3 -> 1.26.3-4",
                "nginx: + zlib1g 1:1.3",
                "nginx: - libc6 2.41-12",
            ]
        );
        assert!(changes(&old, &old).is_empty());
    }

    #[test]
    fn inst_lines_give_each_package_once() {
        let text = "I: x\nInst libgcc-s1 (14.2.0-19 Debian:13.8/stable [amd64]) []\n\
                    Inst busybox-static (1:1.37.0-6+b9 Debian:13.8/stable [amd64])\n\
                    Conf libgcc-s1 (14.2.0-19 Debian:13.8/stable [amd64])\n\
                    Inst libgcc-s1 (14.2.0-19 Debian:13.8/stable [amd64])\n\
                    Inst debconf (1.5.91 Debian:13.8/stable [all])\n";
        assert_eq!(
            simulated_installs(text),
            [
                ("busybox-static".into(), "1:1.37.0-6+b9".into(), "amd64".into()),
                ("debconf".into(), "1.5.91".into(), "all".into()),
                ("libgcc-s1".into(), "14.2.0-19".into(), "amd64".into()),
            ]
        );
    }

    #[test]
    fn index_stanzas_with_and_without_source() {
        let text = "Package: linux-image-cloud-amd64\nSource: linux-signed-amd64 (6.12.117+1)\nVersion: 6.12.117-1\n\
                    Architecture: amd64\nDescription: Linux\n more\nFilename: pool/main/l/x.deb\nSHA256: aa\n\n\
                    Package: nginx-light\nSource: nginx\nVersion: 1.26.3-3\nArchitecture: all\nFilename: pool/n.deb\nSHA256: bb\n\n\
                    Package: busybox-static\nVersion: 1:1.37\nArchitecture: amd64\nFilename: pool/b.deb\nSHA256: cc\n";
        let index = parse_index(text);
        let get = |p: &str, v: &str, a: &str| index[&(p.to_string(), v.to_string(), a.to_string())].clone();
        let k = get("linux-image-cloud-amd64", "6.12.117-1", "amd64");
        assert_eq!(
            (k.source.as_str(), k.source_version.as_str()),
            ("linux-signed-amd64", "6.12.117+1")
        );
        assert_eq!((k.sha256.as_str(), k.filename.as_str()), ("aa", "pool/main/l/x.deb"));
        let n = get("nginx-light", "1.26.3-3", "all");
        assert_eq!((n.source.as_str(), n.source_version.as_str()), ("nginx", "1.26.3-3"));
        assert_eq!(get("busybox-static", "1:1.37", "amd64").source, "busybox-static");
    }

    #[test]
    fn release_fields() {
        let release =
            "Origin: Debian\nDate: Sat, 08 Nov 2025 09:53:16 UTC\nMD5Sum:\n 11 9 main/binary-amd64/Packages.xz\n\
                       SHA256:\n 22 8 main/binary-all/Packages.xz\n 33 9 main/binary-amd64/Packages.xz\n";
        assert_eq!(
            release_sha256(release, "main/binary-amd64/Packages.xz").as_deref(),
            Some("33")
        );
        assert_eq!(release_sha256(release, "contrib/x"), None);
        assert_eq!(release_date(release).as_deref(), Some("Sat, 08 Nov 2025 09:53:16 UTC"));
    }

    #[test]
    fn unserved_names_missing_versions_and_changed_bytes() {
        let locked = [deb("a", "1"), deb("b", "2"), deb("c", "3")];
        let mut index = Index::new();
        index.insert(("a".into(), "1".into(), "amd64".into()), deb("a", "1"));
        let mut rebuilt = deb("b", "2");
        rebuilt.sha256 = "ff".into();
        index.insert(("b".into(), "2".into(), "amd64".into()), rebuilt);
        index.insert(("c".into(), "4".into(), "amd64".into()), deb("c", "4"));
        let names: Vec<&str> = unserved(&locked, &index).iter().map(|d| d.package.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[test]
    fn downloads_must_be_the_locked_bytes() {
        let locked = [deb("busybox-static", "1:1.37.0-6"), deb("libc6", "2.41-12")];
        let line = |d: &Deb, file: &str| format!("{}  /t/var/cache/apt/archives/{file}\n", d.sha256);
        let good =
            line(&locked[0], "busybox-static_1%3a1.37.0-6_amd64.deb") + &line(&locked[1], "libc6_2.41-12_amd64.deb");
        assert_eq!(check_downloads(&good, &locked).unwrap(), 2);
        let other = good.replace("libc6_2.41-12", "libc6_2.41-13");
        let err = format!("{:#}", check_downloads(&other, &locked).unwrap_err());
        assert!(
            err.contains("libc6 2.41-13 was installed, pins.lock locks 2.41-12"),
            "{err}"
        );
        let bytes = good.replacen(&locked[1].sha256, &"e".repeat(64), 1);
        let err = format!("{:#}", check_downloads(&bytes, &locked[1..]).unwrap_err());
        assert!(
            err.contains("busybox-static 1:1.37.0-6 was installed but is not in pins.lock"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            check_downloads(
                &line(&locked[1], "libc6_2.41-12_amd64.deb").replace(&locked[1].sha256, &"e".repeat(64)),
                &locked
            )
            .unwrap_err()
        );
        assert!(err.contains("libc6 2.41-12 has sha256 eeee"), "{err}");
    }

    #[test]
    fn preferences_pin_every_locked_version() {
        let prefs = apt_preferences(&[deb("libc6", "2.41-12")]);
        assert_eq!(prefs, "Package: libc6\nPin: version 2.41-12\nPin-Priority: 1001\n\n");
    }
}
