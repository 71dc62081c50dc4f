pub mod actors;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod store;
