//! The VM: what each method puts into it (`methods`, and the static
//! method's ready image store), the LinuxKit YAML that describes it, and
//! `linuxkit build` turning that into a kernel and an initrd.
pub mod dynamic_vm;
pub mod imagestore;
pub mod linuxkit;
pub mod method;
pub mod methods;
pub mod native_traefik;
pub mod packed;
pub mod static_vm;
