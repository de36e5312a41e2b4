#![deny(unsafe_code)]
//! Configuration model and validation.
