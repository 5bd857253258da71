#[allow(dead_code)]
pub mod febrl;
#[allow(dead_code)]
pub mod japanese;
