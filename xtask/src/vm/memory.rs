//! What a VM's initrd asks of its memory: the kernel unpacks the initrd
//! into a tmpfs whose limit is half the memory the compressed initrd and the
//! kernel leave, so an initrd is measured (how many bytes its cpio archives
//! unpack to, without unpacking them) against `--memory` before any boot,
//! and the native VM's packing decides by it where its services' roots go.

const MIB: u64 = 1 << 20;

/// `bytes` in MiB, with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// The least memory, in MiB, in which the kernel can unpack an initrd of
/// `initrd` bytes that unpacks to `unpacked` (in steps of 64 MiB). The root
/// filesystem is a tmpfs whose size limit is half the memory free when it is
/// mounted, before the unpacking: without the compressed initrd and what the
/// kernel itself holds then ([`KERNEL_HOLDS`], and a 64th of the memory for
/// its page structures). So the memory must be at least the initrd, twice
/// what it unpacks to, and the kernel's. Once unpacked (the compressed copy
/// freed), the files, the kernel and what init starts share it. What the
/// services need once they run comes on top.
pub fn min_memory(initrd: u64, unpacked: u64) -> u32 {
    let tmpfs = (initrd + 2 * unpacked + KERNEL_HOLDS) * 64 / 63;
    let total = initrd + unpacked + 128 * MIB;
    (tmpfs.max(total).div_ceil(64 * MIB) * 64) as u32
}

/// What the kernel holds when it mounts the root filesystem, besides the
/// initrd and its page structures: measured 55 MiB with 8 MiB of page
/// structures (Debian's 6.12 kernel, 2 vCPUs, `-m 512`: "Memory:
/// 296004K/523768K available (… 224212K reserved)" with "Freeing initrd
/// memory: 168040K").
const KERNEL_HOLDS: u64 = 48 * MIB;

/// The problem with booting in `memory` MiB, if there is one.
pub fn memory(initrd: u64, unpacked: u64, memory: u32) -> Option<String> {
    let need = min_memory(initrd, unpacked);
    (memory < need).then(|| {
        format!(
            "the initrd unpacks to {} into a tmpfs of half the memory its {} compressed copy and the kernel leave: \
             --memory {memory} is {} MiB short; use --memory {need} or more",
            mib(unpacked),
            mib(initrd),
            need - memory
        )
    })
}

/// How many bytes the kernel unpacks from an initrd: the length of its cpio
/// archives, uncompressed. The initrds this project writes are uncompressed
/// cpio archives and a run of legacy lz4 frames (whose blocks are measured
/// without decompressing them); a gzip member is taken at its trailer's
/// length. Anything else: `Err` naming what was found.
pub fn unpacked_size(data: &[u8]) -> Result<u64, String> {
    let mut at = 0usize;
    let mut total = 0u64;
    while at < data.len() {
        if data[at] == 0 {
            at += 1;
            continue;
        }
        let rest = &data[at..];
        if rest.starts_with(b"070701") || rest.starts_with(b"070702") {
            let len = cpio_len(rest)?;
            total += len as u64;
            at += len;
        } else if rest.starts_with(&LZ4_LEGACY) {
            return Ok(total + lz4_legacy_len(&rest[4..])?);
        } else if rest.starts_with(&[0x1f, 0x8b]) {
            // A single gzip member to the end: its trailer holds the length (mod 4 GiB).
            let tail = &data[data.len().saturating_sub(4)..];
            return Ok(total + u32::from_le_bytes(tail.try_into().map_err(|_| "truncated gzip")?) as u64);
        } else {
            return Err(format!(
                "an initrd segment at byte {at} is neither cpio, legacy lz4 nor gzip (starts {:02x?})",
                &rest[..rest.len().min(4)]
            ));
        }
    }
    Ok(total)
}

const LZ4_LEGACY: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];

/// The bytes of one newc cpio archive at the start of `data`, through its trailer.
fn cpio_len(data: &[u8]) -> Result<usize, String> {
    let hex = |at: usize| -> Result<usize, String> {
        let field = data.get(at..at + 8).ok_or("truncated cpio header")?;
        usize::from_str_radix(std::str::from_utf8(field).map_err(|e| e.to_string())?, 16).map_err(|e| e.to_string())
    };
    let pad = |n: usize| n.div_ceil(4) * 4;
    let mut at = 0;
    loop {
        if !data.get(at..at + 6).is_some_and(|m| m == b"070701" || m == b"070702") {
            return Err(format!("cpio archive without a trailer (bad header at byte {at})"));
        }
        let (filesize, namesize) = (hex(at + 54)?, hex(at + 94)?);
        let name = data.get(at + 110..at + 110 + namesize).ok_or("truncated cpio name")?;
        at = pad(at + 110 + namesize);
        at = pad(at + filesize);
        if name.starts_with(b"TRAILER!!!") {
            return Ok(at.min(data.len()));
        }
    }
}

/// The uncompressed length of a legacy lz4 stream (after its magic): blocks
/// of a 32-bit length each, more magics where streams were concatenated.
fn lz4_legacy_len(data: &[u8]) -> Result<u64, String> {
    let mut at = 0usize;
    let mut total = 0u64;
    while at + 4 <= data.len() {
        let word = &data[at..at + 4];
        at += 4;
        if word == LZ4_LEGACY {
            continue;
        }
        let len = u32::from_le_bytes(word.try_into().unwrap()) as usize;
        let block = data.get(at..at + len).ok_or("truncated lz4 block")?;
        total += lz4_block_len(block)?;
        at += len;
    }
    Ok(total)
}

/// The uncompressed length of one lz4 block: its literals and matches added
/// up, without producing them.
fn lz4_block_len(block: &[u8]) -> Result<u64, String> {
    let mut at = 0usize;
    let mut out = 0u64;
    let byte = |at: &mut usize| -> Result<u8, String> {
        let b = *block.get(*at).ok_or("truncated lz4 sequence")?;
        *at += 1;
        Ok(b)
    };
    while at < block.len() {
        let token = byte(&mut at)?;
        let mut literals = (token >> 4) as u64;
        if literals == 15 {
            loop {
                let b = byte(&mut at)?;
                literals += b as u64;
                if b != 255 {
                    break;
                }
            }
        }
        at += literals as usize;
        out += literals;
        if at >= block.len() {
            break; // the last sequence has literals only
        }
        at += 2; // the match offset
        let mut matched = (token & 15) as u64;
        if matched == 15 {
            loop {
                let b = byte(&mut at)?;
                matched += b as u64;
                if b != 255 {
                    break;
                }
            }
        }
        out += matched + 4;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_names_the_shortfall_and_the_fix() {
        // An initrd of 145 MB unpacking to 400 MiB: (138 + 800 + 48) * 64/63 MiB, in 64 MiB steps.
        let need = min_memory(145_000_000, 400 * MIB);
        assert_eq!(need, 1024);
        // A native VM on node:20 (164 MiB, 171 MiB unpacked) whose unpacking
        // failed at 512 MiB with "Initramfs unpacking failed: write error".
        assert_eq!(min_memory(172_072_759, 178_851_328), 576);
        assert_eq!(memory(145_000_000, 400 * MIB, 3072), None);
        let said = memory(145_000_000, 400 * MIB, 512).unwrap();
        assert!(said.contains("unpacks to 400.0 MiB"), "{said}");
        assert!(
            said.contains(&format!(
                "--memory 512 is {} MiB short; use --memory {need}",
                need - 512
            )),
            "{said}"
        );
    }

    fn cpio(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let entry = |out: &mut Vec<u8>, name: &str, data: &[u8]| {
            let header = format!(
                "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                1,
                0o100644,
                0,
                0,
                1,
                0,
                data.len(),
                0,
                0,
                0,
                0,
                name.len() + 1,
                0
            );
            out.extend(header.as_bytes());
            out.extend(name.as_bytes());
            out.push(0);
            out.resize(out.len().div_ceil(4) * 4, 0);
            out.extend(data);
            out.resize(out.len().div_ceil(4) * 4, 0);
        };
        for (name, data) in files {
            entry(&mut out, name, data);
        }
        entry(&mut out, "TRAILER!!!", b"");
        out
    }

    /// An lz4 block of `n` literal bytes, then a match of `m` bytes (offset 1) and 5 literals.
    fn lz4_block(n: usize, m: usize) -> Vec<u8> {
        let mut b = Vec::new();
        let lit = n.min(15) as u8;
        let mat = (m - 4).min(15) as u8;
        b.push(lit << 4 | mat);
        if n >= 15 {
            let mut rest = n - 15;
            while rest >= 255 {
                b.push(255);
                rest -= 255;
            }
            b.push(rest as u8);
        }
        b.extend(std::iter::repeat_n(b'x', n));
        b.extend([1, 0]);
        if m - 4 >= 15 {
            let mut rest = m - 4 - 15;
            while rest >= 255 {
                b.push(255);
                rest -= 255;
            }
            b.push(rest as u8);
        }
        b.push(5 << 4);
        b.extend(b"tail!");
        b
    }

    #[test]
    fn unpacked_size_of_cpio_and_lz4_runs() {
        let plain = cpio(&[("etc/hostname", b"linuxkit-compose\n")]);
        assert_eq!(unpacked_size(&plain), Ok(plain.len() as u64));
        let mut initrd = plain.clone();
        initrd.extend([0, 0, 0, 0]);
        // Two lz4 streams back to back, as the static VM's layer segments are.
        for (n, m) in [(300, 10_000), (20, 4)] {
            let block = lz4_block(n, m);
            initrd.extend(LZ4_LEGACY);
            initrd.extend((block.len() as u32).to_le_bytes());
            initrd.extend(&block);
        }
        let want = plain.len() as u64 + (300 + 10_000 + 5) + (20 + 4 + 5);
        assert_eq!(unpacked_size(&initrd), Ok(want));
        assert!(unpacked_size(b"BZh91AY&SY").unwrap_err().contains("neither cpio"));
        let mut truncated = initrd.clone();
        truncated.truncate(initrd.len() - 3);
        assert!(unpacked_size(&truncated).is_err());
    }
}
