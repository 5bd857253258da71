#[allow(dead_code)]
pub mod claims;
#[allow(dead_code)]
pub mod febrl;
#[allow(dead_code)]
pub mod japanese;
