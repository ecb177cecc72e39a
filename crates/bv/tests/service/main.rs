//! `bv serve` end to end: real HTTPS (rustls client) to the real binary, on
//! SQLite and PostgreSQL.

mod harness;

mod access;
mod audit;
mod cli;
mod cluster;
mod custody;
mod erasure;
mod hostile;
mod hsm;
mod limits;
mod links;
mod logs;
mod operators;
mod report;
mod retention;
mod sealed;
mod segments;
mod transport;
mod tus_js;
mod uploads;
mod web;
mod worker;
