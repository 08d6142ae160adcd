//! `spawnwatch`: catches web shells by the process trees they leave.

mod record;
mod source;
mod table;

fn main() {}
