//! A newc ("070701") cpio writer, the format the Linux kernel unpacks from an
//! initrd. The kernel unpacks concatenated archives one after another, each
//! compressed on its own or not at all, so a VM's initrd can be a base archive
//! plus segments appended to it. Reproducible: entries are written in the order
//! given (callers sort), every mtime is 0, and inode numbers count up from 1.

use std::io::{self, Read, Write};

use anyhow::{bail, Result};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// Writes entries to `out`; [`Writer::finish`] writes the trailer.
pub struct Writer<W: Write> {
    out: W,
    ino: u32,
    offset: u64,
}

/// An entry's metadata: full mode (type and permission bits), owner, device.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// (major, minor) of a character or block device.
    pub rdev: (u32, u32),
}

impl Meta {
    pub fn dir(perm: u32) -> Meta {
        Meta {
            mode: S_IFDIR | perm,
            uid: 0,
            gid: 0,
            rdev: (0, 0),
        }
    }

    pub fn file(perm: u32) -> Meta {
        Meta {
            mode: S_IFREG | perm,
            ..Meta::dir(0)
        }
    }
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer { out, ino: 0, offset: 0 }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.offset % 4) as usize) % 4;
        self.write(&[0u8; 3][..n])
    }

    fn header(&mut self, name: &str, meta: Meta, size: u64) -> Result<()> {
        if size > u32::MAX as u64 {
            bail!("{name}: {size} bytes is too big for a newc cpio entry");
        }
        let nlink = if meta.mode & 0o170000 == S_IFDIR { 2 } else { 1 };
        self.ino += 1;
        let fields = [
            self.ino,
            meta.mode,
            meta.uid,
            meta.gid,
            nlink,
            0, // mtime
            size as u32,
            0, // dev major
            0, // dev minor
            meta.rdev.0,
            meta.rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut h = String::with_capacity(110);
        h.push_str("070701");
        for f in fields {
            h.push_str(&format!("{f:08x}"));
        }
        self.write(h.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()?;
        Ok(())
    }

    /// A directory, a device node or a fifo: an entry without data.
    pub fn node(&mut self, name: &str, meta: Meta) -> Result<()> {
        self.header(name, meta, 0)
    }

    pub fn bytes(&mut self, name: &str, meta: Meta, data: &[u8]) -> Result<()> {
        self.header(name, meta, data.len() as u64)?;
        self.write(data)?;
        self.pad()?;
        Ok(())
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        let meta = Meta {
            mode: S_IFLNK | 0o777,
            ..Meta::dir(0)
        };
        self.bytes(name, meta, target.as_bytes())
    }

    /// A regular file of `size` bytes read from `data`.
    pub fn file(&mut self, name: &str, meta: Meta, size: u64, data: &mut dyn Read) -> Result<()> {
        self.header(name, meta, size)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            bail!("{name}: read {copied} of {size} bytes");
        }
        self.offset += copied;
        self.pad()?;
        Ok(())
    }

    /// The trailer; returns the output.
    pub fn finish(mut self) -> Result<W> {
        self.header(
            "TRAILER!!!",
            Meta {
                mode: 0,
                ..Meta::dir(0)
            },
            0,
        )?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(entry: &[u8], i: usize) -> u32 {
        let at = 6 + 8 * i;
        u32::from_str_radix(std::str::from_utf8(&entry[at..at + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn newc_entries_are_aligned_and_reproducible() {
        let write = || {
            let mut w = Writer::new(Vec::new());
            w.node("var", Meta::dir(0o755)).unwrap();
            w.bytes("var/a", Meta::file(0o600), b"hello").unwrap();
            w.symlink("var/l", "a").unwrap();
            w.finish().unwrap()
        };
        let out = write();
        assert_eq!(out, write(), "same input, same bytes");
        assert!(out.starts_with(b"070701"));
        // "var": 110-byte header + "var\0" = 114, padded to 116.
        assert_eq!(field(&out, 1), 0o040755);
        assert_eq!(field(&out, 11), 4, "name size counts the NUL");
        let second = &out[116..];
        assert!(second.starts_with(b"070701"));
        assert_eq!(field(second, 0), 2, "inodes count up");
        assert_eq!(field(second, 1), 0o100600);
        assert_eq!(field(second, 5), 0, "mtime is fixed");
        assert_eq!(field(second, 6), 5);
        // header 110 + "var/a\0" 6 = 116; data 5 padded to 8.
        assert_eq!(&second[116..121], b"hello");
        let third = &second[124..];
        assert!(third.starts_with(b"070701"));
        assert_eq!(field(third, 1), 0o120777);
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
