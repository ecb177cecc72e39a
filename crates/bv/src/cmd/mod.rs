//! One module per subcommand.

pub mod access;
pub mod admin;
pub mod client;
pub mod config;
pub mod doctor;
pub mod enhance;
pub mod infer_pipe;
pub mod job;
pub mod keys;
pub mod models;
pub mod selftest;
pub mod serve;
pub mod submit;
pub mod vault;
pub mod worker;
