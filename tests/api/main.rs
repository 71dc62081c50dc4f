//! Integration tests: the real server, real databases (SQLite file and PostgreSQL) and
//! real HTTP receivers. One file per area.

mod helpers;

mod circuit;
mod cli;
mod commands;
mod deliveries;
mod delivery;
mod embedding;
mod errors;
mod events;
mod health;
mod history;
mod hostile;
mod recovery;
mod security;
mod store;
mod tenants;
mod tls;
mod webhooks;
mod workspaces;
