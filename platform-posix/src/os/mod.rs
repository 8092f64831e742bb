//! The few things POSIX leaves to each system, behind one switch: socket
//! flags, peer credentials, abstract names, the `sun_path` size, mapping
//! flags and which files count as shared-memory objects. Everything else in
//! the crate is the same code on Linux and macOS.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
pub(crate) use macos::*;
