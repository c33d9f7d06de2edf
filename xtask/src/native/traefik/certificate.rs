//! The default TLS certificate: traefik's default store, named in the dynamic
//! configuration so that traefik does not make its own.

use super::dynamic::{DynamicMap, DynamicValue};

/// Where traefik's container finds the default TLS certificate that the VM
/// makes before traefik starts.
///
/// traefik makes its own when no store names one: self-signed, for `TRAEFIK
/// DEFAULT CERT` with a random name under `traefik.default`, on a new
/// 2048-bit RSA key, at every configuration it applies and before that
/// configuration takes effect. Under TCG such a key can take seconds, much of
/// traefik's start. The VM's service runner makes the same
/// kind on a P-256 key in milliseconds (images/init/lkc-service,
/// `certificate`), at each boot, so no private key travels in the image.
pub struct DefaultCertificate<'a> {
    pub cert_file: &'a str,
    pub key_file: &'a str,
}

impl DefaultCertificate<'_> {
    /// The dynamic configuration's `tls.stores`: the default store and its
    /// certificate.
    pub(super) fn tls_stores(&self) -> DynamicValue {
        let file = |path: &str| DynamicValue::Str(path.to_string());
        let certificate = DynamicMap::from([
            ("certFile".to_string(), file(self.cert_file)),
            ("keyFile".to_string(), file(self.key_file)),
        ]);
        let store = DynamicMap::from([("defaultCertificate".to_string(), DynamicValue::Map(certificate))]);
        let stores = DynamicMap::from([("default".to_string(), DynamicValue::Map(store))]);
        DynamicValue::Map(DynamicMap::from([("stores".to_string(), DynamicValue::Map(stores))]))
    }
}
