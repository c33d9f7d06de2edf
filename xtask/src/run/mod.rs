//! Running: QEMU and the accelerator probe, booting (headless or on this
//! terminal), the registry a dynamic VM pulls from, the HTTP probe, the boot
//! tests and the bench; the data disks they keep (`volumes`).
pub mod bench;
pub mod boot;
pub mod data;
pub mod phases;
pub mod pulls;
pub mod qemu;
pub mod registry;
pub mod repro;
pub mod session;
pub mod suite;
pub mod test_boot;
pub mod volumes;
