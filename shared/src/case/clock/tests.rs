//! Tests of the clock rule.
