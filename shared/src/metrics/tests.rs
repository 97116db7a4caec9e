//! Tests of the district metrics.
