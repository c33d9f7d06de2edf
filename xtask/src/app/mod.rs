//! The app model: the compose file, read and checked, and what follows from
//! it (images, routes, the file the VM runs). Pure: no programs run here.
pub mod compose;
pub mod files;
pub mod keys;
pub mod model;
