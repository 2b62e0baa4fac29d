//! The wasm-bindgen surface. Engine errors become JS `Error`s here, once.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use crate::{Error, Gpu};

fn js_error(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

thread_local! {
    // burn registers one wgpu runtime per page; every Engine shares it.
    static GPU: RefCell<Option<Gpu>> = const { RefCell::new(None) };
}

async fn shared_gpu() -> Result<Gpu, Error> {
    if let Some(gpu) = GPU.with(|g| g.borrow().clone()) {
        return Ok(gpu);
    }
    let gpu = Gpu::new_async().await?;
    GPU.with(|g| *g.borrow_mut() = Some(gpu.clone()));
    Ok(gpu)
}

/// The engine's handle on the browser's GPU.
#[wasm_bindgen]
pub struct Engine {
    gpu: Gpu,
}

#[wasm_bindgen]
impl Engine {
    /// Request a WebGPU adapter and device. Fails with a clear message when WebGPU is missing.
    pub async fn create() -> Result<Engine, JsError> {
        Ok(Engine { gpu: shared_gpu().await.map_err(js_error)? })
    }

    /// Run the int4 matvec kernel on random `m×k · (n×k)ᵀ` inputs; returns the relative L2 error
    /// against the CPU reference on the dequantised weights.
    #[wasm_bindgen(js_name = checkInt4Matvec)]
    pub async fn check_int4_matvec(&self, m: usize, n: usize, k: usize, group: usize, seed: u32) -> Result<f64, JsError> {
        crate::kernels::int4_matvec::check_against_reference(&self.gpu, m, n, k, group, seed as u64)
            .await
            .map_err(js_error)
    }

    /// The same check for the tiled int4 GEMM (prefill, vision tower).
    #[wasm_bindgen(js_name = checkInt4Matmul)]
    pub async fn check_int4_matmul(&self, m: usize, n: usize, k: usize, group: usize, seed: u32) -> Result<f64, JsError> {
        crate::kernels::int4_matmul::check_against_reference(&self.gpu, m, n, k, group, seed as u64)
            .await
            .map_err(js_error)
    }
}
