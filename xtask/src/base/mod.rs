//! The ground floor: small tools every stage uses. What the user sees
//! (`ui`), running programs (`exec`), files written whole or not at all and
//! the content hashers (`files`), the HTTP/1.x client (`http`), where things
//! live and the build lock (`project`), the pins of everything fetched
//! (`pins`), pins.lock's data (`lock`), and where the app's images come
//! from (`origin`), and the user namespace an ordinary user builds in
//! (`userns`). Nothing here knows about compose
//! apps, images or VMs.
pub mod exec;
pub mod files;
pub mod http;
pub mod lock;
pub mod origin;
pub mod pins;
pub mod project;
pub mod reference;
#[cfg(test)]
pub mod testdir;
pub mod ui;
pub mod userns;
