//! `hemostat`, the operator's command, as a library: the binary (`src/main.rs`) parses the command line
//! and calls into these modules, and the tests render from them directly.
//!
//! - [`certs`]: make the CA and issue certificates; [`standalone`]: coordinator and node in one process.
//! - [`connection`] and [`config_file`]: where the coordinator is and which certificate to use (flags,
//!   environment, configuration file); [`rpc_error`]: failed calls as one clear line.
//! - [`commands`]: the commands that ask the coordinator something, one module per concept.
//! - [`model`]: what the coordinator tells, converted once from the wire types; [`render`]: how it looks
//!   (tables, JSON); [`table`] and [`terminal`]: aligned columns, and text made safe for a terminal.

pub mod certs;
pub mod commands;
pub mod config_file;
pub mod connection;
pub mod model;
pub mod render;
pub mod rpc_error;
pub mod standalone;
pub mod table;
pub mod terminal;

use std::path::PathBuf;

/// Where the single-host mode keeps its state and certificates, and where the other commands look for them.
pub const DEFAULT_DATA_DIR: &str = "hemostat-data";

/// The default certificates folder: the one `hemostat standalone` creates.
pub fn default_certs_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR).join("certs")
}
