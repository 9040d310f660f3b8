//! The API as a CRM and an operator see it: real HTTP on loopback, and a database per test: a
//! real SQLite file (the `api` target) or a real PostgreSQL database (`api_postgres`).

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
mod pg_restart;
mod postgres_server;
mod process;
mod reconcile;
mod refused;
mod replicas;
mod retention;
mod sources;
mod status;
mod tallyfy_client;
mod upgrade;
