//! The `wasi_snapshot_preview1` imports a Rust `wasm32-wasip1` module uses: seeded
//! `random_get`, clocks on the virtual clock, `fd_write` to the log, environment,
//! `proc_exit`, and "no such file" for the rest of the file system.

use wasmi::{errors::LinkerError, Linker};

use crate::abi::LogLevel;
use crate::memory::{read, write, write_u32, write_u64, Ctx, Fail, HostResult};
use crate::state::{LogSource, START_TIME_NS};
use crate::vm::VmData;

const SUCCESS: u32 = 0;
const EBADF: u32 = 8;
const EFAULT: u32 = 21;
const EINVAL: u32 = 28;
const EIO: u32 = 29;
const ENOSYS: u32 = 52;

type Ret = Result<u32, wasmi::Error>;

/// Maps a host-call body's result to a WASI errno (a bad pointer is `EFAULT`).
fn errno(result: HostResult) -> Ret {
    match result {
        Ok(()) => Ok(SUCCESS),
        Err(Fail::Status(_)) => Ok(EFAULT),
        Err(Fail::Trap(e)) => Err(e),
    }
}

fn environment(c: &Ctx<'_>) -> Vec<Vec<u8>> {
    c.data()
        .host
        .borrow()
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

/// Defines the WASI imports in `linker`.
pub(crate) fn link(linker: &mut Linker<VmData>) -> Result<(), LinkerError> {
    const M: &str = "wasi_snapshot_preview1";
    linker.func_wrap(
        M,
        "args_sizes_get",
        |mut c: Ctx, argc: u32, size: u32| -> Ret {
            errno(write_u32(&mut c, argc, 0).and_then(|()| write_u32(&mut c, size, 0)))
        },
    )?;
    linker.func_wrap(M, "args_get", |_: Ctx, _: u32, _: u32| -> Ret {
        Ok(SUCCESS)
    })?;
    linker.func_wrap(
        M,
        "environ_sizes_get",
        |mut c: Ctx, count: u32, size: u32| -> Ret {
            let env = environment(&c);
            let total: usize = env.iter().map(Vec::len).sum();
            errno((|| {
                write_u32(&mut c, count, u32::try_from(env.len()).unwrap_or(u32::MAX))?;
                write_u32(&mut c, size, u32::try_from(total).unwrap_or(u32::MAX))
            })())
        },
    )?;
    linker.func_wrap(M, "environ_get", |mut c: Ctx, ptrs: u32, buf: u32| -> Ret {
        let env = environment(&c);
        errno((|| {
            let mut at = buf;
            for (i, entry) in env.iter().enumerate() {
                write_u32(&mut c, ptrs + 4 * i as u32, at)?;
                write(&mut c, at, entry)?;
                at += entry.len() as u32;
            }
            Ok(())
        })())
    })?;
    linker.func_wrap(
        M,
        "clock_res_get",
        |mut c: Ctx, _id: u32, out: u32| -> Ret { errno(write_u64(&mut c, out, 1)) },
    )?;
    linker.func_wrap(
        M,
        "clock_time_get",
        |mut c: Ctx, id: u32, _precision: u64, out: u32| -> Ret {
            let now = c.data().host.borrow().now_ns;
            let value = match id {
                0 => now,                     // realtime
                1 => now - START_TIME_NS + 1, // monotonic
                2 | 3 => now - START_TIME_NS, // process / thread cputime
                _ => return Ok(EINVAL),
            };
            errno(write_u64(&mut c, out, value))
        },
    )?;
    linker.func_wrap(
        M,
        "fd_write",
        |mut c: Ctx, fd: u32, iovs: u32, len: u32, written: u32| -> Ret {
            let (level, source) = match fd {
                1 => (LogLevel::Info, LogSource::Stdout),
                2 => (LogLevel::Error, LogSource::Stderr),
                _ => return Ok(EBADF),
            };
            errno((|| {
                let mut text = Vec::new();
                for i in 0..len {
                    let iov = read(&c, iovs + 8 * i, 8)?;
                    let ptr = u32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                    let n = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                    text.extend(read(&c, ptr, n)?);
                }
                let data = c.data();
                let line = text.strip_suffix(b"\n").unwrap_or(&text);
                data.host
                    .borrow_mut()
                    .log(data.index, data.effective, level, source, line);
                write_u32(
                    &mut c,
                    written,
                    u32::try_from(text.len()).unwrap_or(u32::MAX),
                )
            })())
        },
    )?;
    linker.func_wrap(
        M,
        "fd_read",
        |_: Ctx, _: u32, _: u32, _: u32, _: u32| -> Ret { Ok(EBADF) },
    )?;
    linker.func_wrap(M, "fd_close", |_: Ctx, _: u32| -> Ret { Ok(EBADF) })?;
    linker.func_wrap(
        M,
        "fd_seek",
        |_: Ctx, _: u32, _: i64, _: u32, _: u32| -> Ret { Ok(EBADF) },
    )?;
    linker.func_wrap(M, "fd_fdstat_get", |mut c: Ctx, fd: u32, out: u32| -> Ret {
        if fd > 2 {
            return Ok(EBADF);
        }
        // filetype CHARACTER_DEVICE, no flags, every right.
        let mut stat = [0u8; 24];
        stat[0] = 2;
        stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        errno(write(&mut c, out, &stat))
    })?;
    linker.func_wrap(M, "fd_prestat_get", |_: Ctx, _: u32, _: u32| -> Ret {
        Ok(EBADF)
    })?;
    linker.func_wrap(
        M,
        "fd_prestat_dir_name",
        |_: Ctx, _: u32, _: u32, _: u32| -> Ret { Ok(EBADF) },
    )?;
    linker.func_wrap(
        M,
        "proc_exit",
        |_: Ctx, code: u32| -> Result<(), wasmi::Error> {
            Err(wasmi::Error::i32_exit(code as i32))
        },
    )?;
    linker.func_wrap(M, "random_get", |mut c: Ctx, buf: u32, len: u32| -> Ret {
        if c.data()
            .host
            .borrow()
            .failing_imports
            .contains("random_get")
        {
            return Ok(EIO);
        }
        let size = c.data().memory.map_or(0, |m| m.data_size(&c));
        if (buf as usize).saturating_add(len as usize) > size {
            return Ok(EFAULT);
        }
        let mut bytes = vec![0u8; len as usize];
        c.data_mut().fill_random(&mut bytes);
        errno(write(&mut c, buf, &bytes))
    })?;
    linker.func_wrap(M, "sched_yield", |_: Ctx| -> Ret { Ok(SUCCESS) })?;
    linker.func_wrap(
        M,
        "poll_oneoff",
        |_: Ctx, _: u32, _: u32, _: u32, _: u32| -> Ret { Ok(ENOSYS) },
    )?;
    Ok(())
}
