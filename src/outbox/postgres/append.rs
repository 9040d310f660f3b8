//! Appends a whole batch in the writer's transaction, deduplicated by event id and by CRM record.
