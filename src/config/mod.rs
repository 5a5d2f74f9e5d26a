//! Configuration: the YAML file format, its validation, and the runtime types built from it.

pub mod model;

pub use model::*;
