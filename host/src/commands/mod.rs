//! One module per command of the binary (`run`, `bench`, `demo`, `check`,
//! `new`, `produce`, the inspection commands, and stream ownership
//! mode's `assign` and `owners`). Commands use every layer
//! below; nothing below uses them.

pub mod bench;
pub mod check;
pub mod compare;
pub mod demo;
pub mod inspect;
pub mod ownership;
pub mod partitioned;
pub mod produce;
pub mod progress;
pub mod redrive;
pub mod run;
pub mod scaffold;
pub mod test;
