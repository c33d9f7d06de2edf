//! Building: the host programs (one requirement path) and `doctor`, pinned Go
//! tools, the VM's own images from Debian packages (buildah, daemonless), the
//! app's images, and the LinuxKit image cache they land in.
pub mod app_pulls;
pub mod apps;
pub mod buildah;
pub mod cpio;
pub mod debian;
pub mod dockerfile;
pub mod doctor;
pub mod gotools;
pub mod host;
pub mod images;
pub mod lock;
pub mod oci;
pub mod pull;
pub mod registry;
pub mod upload;
