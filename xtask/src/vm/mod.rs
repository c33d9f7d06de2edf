//! The VM: what each method puts into it (`methods`, the static method's
//! ready image store, the native method's conversion of compose services
//! into LinuxKit services), the LinuxKit YAML that describes it, and
//! `linuxkit build` turning that into a kernel and an initrd.
pub mod dynamic_vm;
pub mod imagestore;
pub mod linuxkit;
pub mod method;
pub mod methods;
pub mod native;
pub mod native_vm;
pub mod packed;
pub mod parts;
pub mod sbom;
pub mod static_vm;
pub mod sums;
