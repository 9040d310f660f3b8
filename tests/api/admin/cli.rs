//! `tallyfy-bridge deliveries …` as the real binary against a spawned app.
