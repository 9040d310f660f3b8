//! The API as a CRM and an operator see it: real HTTP on loopback, a real SQLite file per test.

mod admin;
mod auth;
mod binary;
mod console;
mod crash;
mod credentials;
mod database_file;
mod delivery;
mod durability;
mod helpers;
mod hostile_input;
mod ingest;
mod metrics;
mod openapi;
mod process;
mod reconcile;
mod refused;
mod retention;
mod sources;
mod status;
mod tallyfy_client;
mod upgrade;
