//! What a VM's initrd is made of: its largest parts and their sizes as stored
//! (compressed), written beside the initrd when it is built (`NAME.parts`) and
//! printed under it, so the size a build reports says where it goes.

use std::{fs, path::Path};

use anyhow::{Context, Result};

use crate::base::files;

/// One part: what it is and its bytes in the initrd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub bytes: u64,
}

impl Part {
    pub fn new(name: impl Into<String>, bytes: u64) -> Part {
        Part {
            name: name.into(),
            bytes,
        }
    }
}

/// How many parts the summary names; the others are summed.
const NAMED: usize = 5;

/// The parts file of `initrd`.
pub fn path_of(initrd: &Path) -> std::path::PathBuf {
    initrd.with_extension("parts")
}

/// Write `parts` as `initrd`'s parts file: one `BYTES<TAB>NAME` line each.
pub fn write(initrd: &Path, parts: &[Part]) -> Result<()> {
    let text: String = parts.iter().map(|p| format!("{}\t{}\n", p.bytes, p.name)).collect();
    files::write_atomic(&path_of(initrd), text.as_bytes())
}

/// `initrd`'s parts, or none when it has no parts file (built before there were).
pub fn read(initrd: &Path) -> Result<Vec<Part>> {
    let path = path_of(initrd);
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    text.lines()
        .map(|line| {
            let (bytes, name) = line
                .split_once('\t')
                .with_context(|| format!("{}: a line without a tab: {line:?}", path.display()))?;
            Ok(Part::new(
                name,
                bytes.parse().with_context(|| format!("{}: {line:?}", path.display()))?,
            ))
        })
        .collect()
}

/// One line: the largest parts first, in MB with one decimal, the smallest
/// summed (`services/docker 58.4 MB, …, 4 more 3.1 MB`).
pub fn summary(parts: &[Part]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    let mb = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1e6);
    let mut items: Vec<String> = sorted
        .iter()
        .take(NAMED)
        .map(|p| format!("{} {}", p.name, mb(p.bytes)))
        .collect();
    let rest = &sorted[sorted.len().min(NAMED)..];
    if !rest.is_empty() {
        let bytes = rest.iter().map(|p| p.bytes).sum();
        items.push(format!("{} more {}", rest.len(), mb(bytes)));
    }
    format!("made of: {}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::testdir::TestDir;

    #[test]
    fn the_summary_names_the_largest_parts_and_sums_the_others() {
        let parts: Vec<Part> = [("onboot/000-modules", 962_560), ("services/docker", 58_396_672)]
            .into_iter()
            .chain((1..=5).map(|i| ("image", i * 1_000_000)))
            .map(|(n, b)| Part::new(n, b))
            .collect();
        assert_eq!(
            summary(&parts),
            "made of: services/docker 58.4 MB, image 5.0 MB, image 4.0 MB, image 3.0 MB, image 2.0 MB, \
             2 more 2.0 MB"
        );
        assert_eq!(summary(&parts[..1]), "made of: onboot/000-modules 1.0 MB");
    }

    #[test]
    fn parts_files_round_trip_and_may_be_missing() {
        let dir = TestDir::new("parts");
        let initrd = dir.join("x-initrd.img");
        assert_eq!(read(&initrd).unwrap(), []);
        let parts = [
            Part::new("services/docker", 7),
            Part::new("the rest (init, modules)", 3),
        ];
        write(&initrd, &parts).unwrap();
        assert_eq!(read(&initrd).unwrap(), parts);
        fs::write(path_of(&initrd), "7 services/docker\n").unwrap();
        assert!(read(&initrd).is_err());
    }
}
