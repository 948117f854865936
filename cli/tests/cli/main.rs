//! The `hemostat` binary's tests, in one test binary: its commands against a real `hemostat standalone`,
//! the rendering against golden files, and the standalone mode itself.

mod commands;
mod engines;
mod notify;
mod snapshots;
mod standalone;
