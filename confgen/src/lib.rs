//! Config generator (work in progress).
