/*
 * bcryptprimitives.dll shim for running Windows test binaries under wine 8.0.
 *
 * Rust's std (1.78+) imports bcryptprimitives.dll!ProcessPrng, which wine 8.0 lacks, so
 * every test binary fails to load. This DLL provides ProcessPrng on top of
 * advapi32!SystemFunction036 (RtlGenRandom). CI only: never shipped.
 *
 * x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll ProcessPrng.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
