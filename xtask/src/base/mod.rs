//! The ground floor: small tools every stage uses. What the user sees
//! (`ui`), running programs (`exec`), files written whole or not at all and
//! one content hasher (`files`), where things live and the build lock
//! (`project`), and the pins of everything fetched (`pins`). Nothing here
//! knows about compose apps, images or VMs.
pub mod exec;
pub mod files;
pub mod pins;
pub mod project;
pub mod reference;
#[cfg(test)]
pub mod testdir;
pub mod ui;
