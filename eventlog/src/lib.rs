//! The durable event log: one trait, backends chosen by URL
