use std::marker::PhantomData;

use dpdk_sys as sys;

use crate::{Eal, Error, Result};

/// The packet-capture server (`rte_pdump_init`): while it lives, a
/// secondary process such as `dpdk-dumpcap --file-prefix PREFIX` can ask
/// this one to copy a port's frames into its ring. Capturing costs the
/// workers nothing until someone asks: DPDK then adds RX and TX callbacks
/// to the port, which run inside the workers' bursts.
///
/// Only a primary process can serve, and only one whose EAL shares its
/// memory through runtime files: under `--in-memory` or `--no-shconf` no
/// secondary can attach, though `rte_pdump_init` still succeeds; the
/// caller knows which it asked EAL for. Dropped before the [`Eal`]
/// (`rte_pdump_uninit` frees its statistics memzone).
#[derive(Debug)]
pub struct Pdump<'e> {
    _eal: PhantomData<&'e Eal>,
}

impl<'e> Pdump<'e> {
    pub fn init(_eal: &'e Eal) -> Result<Pdump<'e>> {
        // SAFETY: a getter; EAL is initialised (we hold an Eal).
        if unsafe { sys::rte_eal_process_type() } != sys::RTE_PROC_PRIMARY {
            return Err(Error {
                op: "rte_pdump_init",
                errno: libc::EPERM,
            });
        }
        // SAFETY: EAL is initialised; it reserves a memzone and registers
        // a multi-process handler, both undone by rte_pdump_uninit.
        let ret = unsafe { sys::rte_pdump_init() };
        if ret < 0 {
            return Err(Error::last("rte_pdump_init"));
        }
        Ok(Pdump { _eal: PhantomData })
    }
}

impl Drop for Pdump<'_> {
    fn drop(&mut self) {
        // SAFETY: init succeeded; the Eal outlives self, so this runs
        // before rte_eal_cleanup.
        unsafe { sys::rte_pdump_uninit() };
    }
}
