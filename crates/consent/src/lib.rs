//! kiban-consent
