;; grow.wasm: a WASI command that grows its memory (1 page at start) by
;; 1024 pages (64 MiB) and exits 0 when memory.grow succeeded, 3 when it
;; returned -1. Tests of the guest memory limit (host.Config.WithMemoryLimit,
;; wasmgate run --max-memory) use it. Rebuild with: wat2wasm grow.wat
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 1024)) (i32.const -1))
      (then (call $exit (i32.const 3))))
    ;; touch the last byte, which traps if the memory did not really grow
    (i32.store8 (i32.const 67174399) (i32.const 1))
    (call $exit (i32.const 0))))
