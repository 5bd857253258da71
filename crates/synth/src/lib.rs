//! kiban-synth
