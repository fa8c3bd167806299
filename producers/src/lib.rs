//! The edge: HTTP game start/join, region routing, session_created
