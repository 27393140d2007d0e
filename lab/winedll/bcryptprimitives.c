/*
 * A stand-in for Windows' bcryptprimitives.dll, for Wine 8.0, which lacks it.
 *
 * Rust's standard library (1.78 and later) takes its random bytes from
 * bcryptprimitives.dll!ProcessPrng, so every Rust program for x86_64-pc-windows-gnu fails to
 * start under Wine 8.0 ("import_dll Library bcryptprimitives.dll ... not found",
 * c0000135). This DLL exports ProcessPrng on top of advapi32's SystemFunction036
 * (RtlGenRandom), which Wine has. It belongs in a Wine prefix's
 * drive_c/windows/system32 (`lab/wine prefix` installs it); real Windows (10 and later)
 * has its own and never needs this one.
 *
 * Built with `x86_64-w64-mingw32-gcc -shared -nostdlib` (`lab/wine dll`): no C
 * runtime, so no entry point but the one below and no calls it would bring in.
 */
#include <windows.h>

/* advapi32!SystemFunction036, i.e. RtlGenRandom: fills the buffer with random bytes. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/*
 * Fills data[0..length) with random bytes. Windows documents ProcessPrng as always
 * returning TRUE (it cannot fail); here a failing RtlGenRandom returns FALSE, which Rust's
 * std turns into a panic rather than into weak randomness.
 */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a ULONG (32-bit) length: larger requests go in chunks. */
    const SIZE_T chunk = 0x40000000;
    while (length > 0) {
        ULONG n = (ULONG)(length < chunk ? length : chunk);
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        length -= n;
    }
    return TRUE;
}

/* The DLL's entry point (no C runtime to provide DllMain): nothing to set up. */
BOOL WINAPI DllMainCRTStartup(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
