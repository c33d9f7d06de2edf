//! A default TLS certificate made in the VM, for a service that would
//! otherwise make a slow one itself (annotation
//! `org.linuxkit-compose.default_certificate`: the directory to put it in).
//!
//! traefik makes its own default certificate when none is named: self-signed,
//! for `TRAEFIK DEFAULT CERT` with a random name under `traefik.default`,
//! valid for a year, on a new 2048-bit RSA key, at every configuration it
//! applies and before that configuration takes effect. Under emulation (TCG)
//! such a key can take seconds. The native method names this certificate in
//! traefik's configuration instead: the same kind, on a P-256 key, made here
//! in a few milliseconds before traefik starts, once per boot. It is made in
//! the VM, so no private key travels in the image.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{chown, OpenOptionsExt};
use std::path::Path;
use time::{Duration, OffsetDateTime};

pub const CERT: &str = "cert.pem";
pub const KEY: &str = "key.pem";

/// Make `dir`/cert.pem and `dir`/key.pem unless both are there (a restarted
/// service keeps its certificate), owned by `owner` (uid, gid): the key is
/// readable by that user only.
pub fn make(dir: &Path, owner: (u32, u32)) -> Result<(), String> {
    let (cert_file, key_file) = (dir.join(CERT), dir.join(KEY));
    if cert_file.exists() && key_file.exists() {
        return Ok(());
    }
    crate::prepare::mkdir_p(dir)?;
    let (cert, key) = generate(OffsetDateTime::now_utc())?;
    write(&key_file, &key, 0o600, owner)?;
    write(&cert_file, &cert, 0o644, owner)
}

/// The user the bundle's process runs as (config.json `process.user`).
pub fn owner(bundle: &Path) -> Result<(u32, u32), String> {
    #[derive(serde::Deserialize, Default)]
    struct User {
        #[serde(default)]
        uid: u32,
        #[serde(default)]
        gid: u32,
    }
    #[derive(serde::Deserialize, Default)]
    struct Process {
        #[serde(default)]
        user: User,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        process: Process,
    }
    let c: Config = crate::annotations::config_json(bundle)?;
    Ok((c.process.user.uid, c.process.user.gid))
}

/// The certificate and key, PEM, valid from `now` for 365 days.
fn generate(now: OffsetDateTime) -> Result<(String, String), String> {
    let fail = |e: rcgen::Error| format!("making a default certificate: {e}");
    let mut random = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("{}.{}.traefik.default", &hex[..32], &hex[32..]);
    let mut params = CertificateParams::new(vec![name]).map_err(fail)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "TRAEFIK DEFAULT CERT");
    params.distinguished_name = subject;
    params.not_before = now;
    params.not_after = now + Duration::days(365);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Write `file` whole, with `mode` from its creation on.
fn write(file: &Path, contents: &str, mode: u32, (uid, gid): (u32, u32)) -> Result<(), String> {
    let at = |e: std::io::Error| format!("writing {}: {e}", file.display());
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(file)
        .map_err(at)?;
    f.write_all(contents.as_bytes()).map_err(at)?;
    chown(file, Some(uid), Some(gid)).map_err(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_p256_certificate_for_a_random_name() {
        // 2027-01-15 08:00:00 UTC.
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let (cert, key) = generate(now).unwrap();
        let der = pem::parse(&cert).unwrap();
        assert_eq!(der.tag(), "CERTIFICATE");
        assert_eq!(pem::parse(&key).unwrap().tag(), "PRIVATE KEY");
        let der = der.contents();
        let has = |bytes: &[u8]| der.windows(bytes.len()).any(|w| w == bytes);
        assert!(has(b"TRAEFIK DEFAULT CERT"), "the subject traefik gives its own");
        assert!(has(b".traefik.default"), "a name under traefik.default");
        // id-ecPublicKey's curve: prime256v1 (1.2.840.10045.3.1.7).
        assert!(
            has(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
            "a P-256 key"
        );
        assert!(
            has(b"270115080000Z") && has(b"280115080000Z"),
            "valid from now for a year"
        );
        let (other, _) = generate(now).unwrap();
        assert_ne!(cert, other, "each one is new");
    }

    #[test]
    fn the_owner_is_the_process_user() {
        let dir = std::env::temp_dir().join(format!("lkc-owner-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.json");
        fs::write(&config, r#"{"process": {"user": {"uid": 65534, "gid": 101}}}"#).unwrap();
        assert_eq!(owner(&dir).unwrap(), (65534, 101));
        fs::write(&config, r#"{"ociVersion": "1.0.2"}"#).unwrap();
        assert_eq!(owner(&dir).unwrap(), (0, 0), "root when config.json names no user");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn made_once_with_a_private_key() {
        let dir = std::env::temp_dir().join(format!("lkc-cert-{}", std::process::id()));
        let me = unsafe { (libc::getuid(), libc::getgid()) };
        make(&dir, me).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(KEY), 0o600);
        assert_eq!(mode(CERT), 0o644);
        let first = fs::read_to_string(dir.join(CERT)).unwrap();
        make(&dir, me).unwrap();
        assert_eq!(fs::read_to_string(dir.join(CERT)).unwrap(), first, "a restart keeps it");
        fs::remove_dir_all(&dir).unwrap();
    }
}
