//! The pipeline's own vocabulary, independent of HTTP, SQL and any vendor's wire format.

pub mod outcome;
