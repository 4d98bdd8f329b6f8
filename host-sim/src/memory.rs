//! Guest-memory access for host calls: bounds-checked reads and writes, and handing
//! bytes to the module through its allocator (`proxy_on_memory_allocate`).

use wasmi::Caller;

use crate::abi::Status;
use crate::vm::VmData;

/// A host call's caller.
pub(crate) type Ctx<'a> = Caller<'a, VmData>;

/// Why a host call stopped early: a status for the module, or a trap.
pub(crate) enum Fail {
    /// Return this status to the module.
    Status(Status),
    /// Trap the module.
    Trap(wasmi::Error),
}

impl From<Status> for Fail {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

impl From<wasmi::Error> for Fail {
    fn from(error: wasmi::Error) -> Self {
        Self::Trap(error)
    }
}

/// Result of a host call's body.
pub(crate) type HostResult<T = ()> = Result<T, Fail>;

/// Turns a host call's body result into the raw status the module receives.
pub(crate) fn status(result: HostResult) -> Result<u32, wasmi::Error> {
    match result {
        Ok(()) => Ok(Status::Ok as u32),
        Err(Fail::Status(s)) => Ok(s as u32),
        Err(Fail::Trap(e)) => Err(e),
    }
}

fn range(ptr: u32, len: u32, size: usize) -> HostResult<std::ops::Range<usize>> {
    let start = ptr as usize;
    let end = start
        .checked_add(len as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    if end > size {
        return Err(Status::InvalidMemoryAccess.into());
    }
    Ok(start..end)
}

/// Copies `len` bytes at `ptr` out of the module's memory.
pub(crate) fn read(c: &Ctx<'_>, ptr: u32, len: u32) -> HostResult<Vec<u8>> {
    let memory = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let data = memory.data(c);
    Ok(data[range(ptr, len, data.len())?].to_vec())
}

/// Reads text (non-UTF-8 bytes replaced).
pub(crate) fn read_string(c: &Ctx<'_>, ptr: u32, len: u32) -> HostResult<String> {
    Ok(String::from_utf8_lossy(&read(c, ptr, len)?).into_owned())
}

/// Writes `bytes` at `ptr` into the module's memory.
pub(crate) fn write(c: &mut Ctx<'_>, ptr: u32, bytes: &[u8]) -> HostResult {
    let memory = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let data = memory.data_mut(&mut *c);
    let r = range(
        ptr,
        u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        data.len(),
    )?;
    data[r].copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian u32.
pub(crate) fn write_u32(c: &mut Ctx<'_>, ptr: u32, value: u32) -> HostResult {
    write(c, ptr, &value.to_le_bytes())
}

/// Writes a little-endian u64.
pub(crate) fn write_u64(c: &mut Ctx<'_>, ptr: u32, value: u64) -> HostResult {
    write(c, ptr, &value.to_le_bytes())
}

/// Hands `bytes` to the module: allocates them with its allocator and writes the
/// pointer and size to `ptr_ptr` / `size_ptr`. Empty bytes are (0, 0), as in Envoy.
pub(crate) fn copy_out(c: &mut Ctx<'_>, bytes: &[u8], ptr_ptr: u32, size_ptr: u32) -> HostResult {
    let size = u32::try_from(bytes.len()).map_err(|_| Status::InvalidMemoryAccess)?;
    let mut ptr = 0;
    if size > 0 {
        let malloc = c.data().malloc.ok_or_else(|| {
            wasmi::Error::new("the module exports no proxy_on_memory_allocate / malloc")
        })?;
        ptr = malloc.call(&mut *c, size)?;
        if ptr == 0 {
            return Err(Status::InvalidMemoryAccess.into());
        }
        write(c, ptr, bytes)?;
    }
    write_u32(c, ptr_ptr, ptr)?;
    write_u32(c, size_ptr, size)
}
