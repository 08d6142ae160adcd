//! `spawnwatch`: catches web shells by the process trees they leave.

mod record;
mod source;

fn main() {}
