//! The VM: what each method puts into it (`method` sends each to its own
//! module: `static_vm` with its ready image store, `dynamic_vm`, `native_vm`
//! with the native conversion; `shared` is what they have in common), the
//! LinuxKit YAML that describes it, and `linuxkit build` turning that into a
//! kernel and an initrd; `memory`, what an initrd asks of the VM's memory.
pub mod dynamic_vm;
pub mod imagestore;
pub mod linuxkit;
pub mod memory;
pub mod method;
pub mod native_vm;
pub mod packed;
pub mod parts;
pub mod sbom;
pub mod shared;
pub mod static_vm;
pub mod sums;
