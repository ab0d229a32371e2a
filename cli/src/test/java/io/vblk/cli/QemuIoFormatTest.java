package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The expected strings are qemu-io 7.2's output for the same values (see docs/cli.md). */
class QemuIoFormatTest {
    @Test
    void cvtstrMatchesQemuIo() {
        assertEquals("4 KiB", QemuIoFormat.cvtstr(4096));
        assertEquals("512 bytes", QemuIoFormat.cvtstr(512));
        assertEquals("0 bytes", QemuIoFormat.cvtstr(0));
        assertEquals("417.606194 bytes", QemuIoFormat.cvtstr(417.606194));
        assertEquals("1 MiB", QemuIoFormat.cvtstr(1 << 20));
        assertEquals("9.591 MiB", QemuIoFormat.cvtstr(9.591 * (1 << 20)));
        assertEquals("537.627 KiB", QemuIoFormat.cvtstr(537.627 * 1024));
        assertEquals("2 GiB", QemuIoFormat.cvtstr(2.0 * (1L << 30)));
        assertEquals("1.500 TiB", QemuIoFormat.cvtstr(1.5 * (1L << 40)));
    }

    @Test
    void timestrShortAndFixedForms() {
        assertEquals("00.01 sec", QemuIoFormat.timestr(10_000_000L, false));
        assertEquals("00.00 sec", QemuIoFormat.timestr(9_999_999L, false));
        assertEquals("12.34 sec", QemuIoFormat.timestr(12_345_000_000L, false));
        assertEquals("0:00:00.00", QemuIoFormat.timestr(1_000_000L, true));
        assertEquals("1:01:01.50", QemuIoFormat.timestr((3661L * 1000 + 500) * 1_000_000L, false));
    }

    @Test
    void reportHasQemuIoLines() {
        // 4096 bytes in 0.5 s: 8 KiB/sec, 2 ops/sec
        assertEquals("wrote 4096/4096 bytes at offset 0\n4 KiB, 1 ops; 00.50 sec (8 KiB/sec and 2.0000 ops/sec)",
                QemuIoFormat.report("wrote", 500_000_000L, 0, 4096, 4096, 1, false));
        assertEquals("4096,1,0:00:00.50,8192.000,2.000", QemuIoFormat.report("read", 500_000_000L, 0, 4096, 4096, 1, true));
        assertEquals("read 0/0 bytes at offset 7\n0 bytes, 1 ops; 01.00 sec (0 bytes/sec and 1.0000 ops/sec)",
                QemuIoFormat.report("read", 1_000_000_000L, 7, 0, 0, 1, false));
    }

    @Test
    void dumpMatchesQemuIoReadV() {
        try (io.vblk.block.NativeBuffer b = io.vblk.block.NativeBuffer.allocate(40, 64)) {
            b.fill(0, 20, (byte) 0x41);
            b.fill(20, 20, (byte) 0xcd);
            assertEquals("""
                    00000000:  41 41 41 41 41 41 41 41 41 41 41 41 41 41 41 41  AAAAAAAAAAAAAAAA
                    00000010:  41 41 41 41 cd cd cd cd cd cd cd cd cd cd cd cd  AAAA............
                    00000020:  cd cd cd cd cd cd cd cd  ........
                    """, QemuIoFormat.dump(b.segment(), 0, 40));
            assertEquals("00000003:  41 41 41 41 41  AAAAA\n", QemuIoFormat.dump(b.segment().asSlice(3), 3, 5));
            b.copyFrom(new byte[] {0x21, 0x21, 0x20, 0x20, 0x7e, 0x7e, 0x41, 0x61, 0x39}, 0, 0, 9);
            assertEquals("00000000:  21 21 20 20 7e 7e 41 61 39  ......Aa9\n", QemuIoFormat.dump(b.segment(), 0, 9));
        }
    }
}
