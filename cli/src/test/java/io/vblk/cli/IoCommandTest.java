package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** vblk io on the memory driver (and a raw file): qemu-io's lines, pattern checks, exit codes. */
class IoCommandTest {
    @TempDir
    Path dir;

    @Test
    void writeThenReadWithPatternPrintsQemuIoLines() {
        CliRun r = CliRun.of("io", "-f", "memory", "-c", "write -P 0xab 0 4k", "-c", "read -P 0xab 0 4k", "-c", "read -q 512 512", "1M");
        assertEquals(0, r.rc(), r.err());
        assertEquals("wrote 4096/4096 bytes at offset 0\n4 KiB, 1 ops; X\nread 4096/4096 bytes at offset 0\n4 KiB, 1 ops; X\n",
                r.outWithoutTimes());
        assertTrue(r.out().matches("(?s).*4 KiB, 1 ops; \\d\\d\\.\\d\\d sec \\(\\S+ \\S+/sec and \\d+\\.\\d{4} ops/sec\\)\n.*"), r.out());
        assertEquals("", r.err());
    }

    @Test
    void patternMismatchIsReportedAndFailsTheRunButLaterCommandsStillRun() {
        CliRun r = CliRun.of("io", "-f", "memory", "-c", "write -P 1 0 8k", "-c", "write -P 2 4k 512",
                "-c", "read -P 1 0 8k", "-c", "read -P 1 -s 0 -l 4k 0 8k", "1M");
        assertEquals(1, r.rc());
        assertEquals("""
                wrote 8192/8192 bytes at offset 0
                8 KiB, 1 ops; X
                wrote 512/512 bytes at offset 4096
                512 bytes, 1 ops; X
                Pattern verification failed at offset 0, 8192 bytes
                read 8192/8192 bytes at offset 0
                8 KiB, 1 ops; X
                read 8192/8192 bytes at offset 0
                8 KiB, 1 ops; X
                """, r.outWithoutTimes());
    }

    @Test
    void zeroWritesDiscardAndFlush() {
        CliRun r = CliRun.of("io", "-f", "memory", "-c", "write -P 0x55 0 64k", "-c", "write -z 4k 4k", "-c", "read -P 0 4k 4k",
                "-c", "write -z -u 8k 4k", "-c", "read -P 0 8k 4k", "-c", "read -P 0x55 12k 4k", "-c", "flush",
                "-c", "discard 0 4k", "1M");
        assertEquals(0, r.rc(), r.out() + r.err());
        assertTrue(r.out().contains("discard 4096/4096 bytes at offset 0\n"), r.out());
    }

    @Test
    void aioRequestsRunConcurrentlyAndAioFlushWaits() {
        CliRun r = CliRun.of("io", "-f", "memory", "-c", "aio_write -P 7 0 4k", "-c", "aio_write -P 8 4k 4k",
                "-c", "aio_flush", "-c", "read -P 7 0 4k", "-c", "read -P 8 4k 4k", "-c", "aio_read -P 9 0 4k", "1M");
        // a failed aio_read verification is printed but, as in qemu-io, does not change the exit code
        assertEquals(0, r.rc(), r.out() + r.err());
        assertTrue(r.out().contains("wrote 4096/4096 bytes at offset 4096\n"), r.out());
        assertTrue(r.out().contains("Pattern verification failed at offset 0, 4096 bytes\n"), r.out());
    }

    @Test
    void requestsPastTheEndFailWithEioLikeABlockBackend() {
        CliRun r = CliRun.of("io", "-f", "memory", "-c", "read 0 2M", "-c", "write 1M 1", "-c", "discard 1023k 2k",
                "-c", "aio_write 1M 512", "-c", "read 1023k 1k", "1M");
        assertEquals(1, r.rc());
        assertEquals("""
                read failed: Input/output error
                write failed: Input/output error
                discard failed: Input/output error
                aio_write failed: Input/output error
                read 1024/1024 bytes at offset 1047552
                1 KiB, 1 ops; X
                """, r.outWithoutTimes());
    }

    @Test
    void badCommandsGetQemuIoMessages() {
        CliRun r = CliRun.of("io", "-f", "memory", "-c", "bogus", "-c", "read", "-c", "read 0 abc", "-c", "write -u 0 4k",
                "-c", "write -P 0x100 0 1", "-c", "write -z -P 1 0 1", "-c", "read -x 0 1", "-c", "flush 1", "1M");
        assertEquals(1, r.rc());
        assertEquals("""
                Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- abc
                -u requires -z to be specified
                0x100 is not a valid pattern byte
                Only one of -z, -P, and -s can be specified at the same time
                read [-Cqv] [-P pattern [-s off] [-l len]] off len -- reads a number of bytes at a specified offset
                """, r.out());
        assertEquals("""
                command "bogus" not found
                bad argument count 0 to read, expected at least 2 arguments
                read: invalid option -- 'x'
                bad argument count 1 to flush, expected 0 arguments
                """, r.err());
    }

    @Test
    void eachFailureKindAloneGivesExitOne() {
        assertEquals(1, CliRun.of("io", "-f", "memory", "-c", "bogus", "1M").rc());
        assertEquals(1, CliRun.of("io", "-f", "memory", "-c", "read 0 x", "1M").rc());
        assertEquals(0, CliRun.of("io", "-f", "memory", "-c", "read 0 0", "1M").rc());
        assertEquals(0, CliRun.of("io", "-f", "memory", "-c", "aio_read 0 2M", "1M").rc());
    }

    @Test
    void readOnlyRefusesWrites() {
        CliRun r = CliRun.of("io", "-r", "-f", "memory", "-c", "write 0 512", "-c", "read 0 512", "1M");
        assertEquals(1, r.rc());
        assertTrue(r.out().startsWith("read 512/512 bytes at offset 0\n"), r.out());
        assertEquals("vblk: Block node is read-only\n", r.err());
    }

    @Test
    void machineFormatAndLength() {
        CliRun r = CliRun.of("io", "-f", "memory", "-c", "write -C 0 4k", "-c", "length", "3M");
        assertEquals(0, r.rc());
        assertTrue(r.out().matches("4096,1,0:00:\\d\\d\\.\\d\\d,\\d+\\.\\d{3},\\d+\\.\\d{3}\n3 MiB\n"), r.out());
    }

    @Test
    void openErrorsAreOneLine() throws Exception {
        CliRun r = CliRun.of("io", "-c", "read 0 1", dir.resolve("missing").toString());
        assertEquals(1, r.rc());
        assertTrue(r.err().startsWith("vblk: can't open device " + dir.resolve("missing") + ": "), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        CliRun noFile = CliRun.of("io", "-c", "read 0 1");
        assertEquals(1, noFile.rc());
        assertTrue(noFile.err().contains("Expecting one image file name"), noFile.err());
    }

    @Test
    void rawFileRoundTrip() throws Exception {
        Path f = dir.resolve("a.raw");
        try (var raf = new java.io.RandomAccessFile(f.toFile(), "rw")) {
            raf.setLength(1 << 20);
        }
        CliRun w = CliRun.of("io", "-f", "raw", "-c", "write -P 0x5a 4k 8k", f.toString());
        assertEquals(0, w.rc(), w.out() + w.err());
        byte[] data = Files.readAllBytes(f);
        for (int i = 0; i < data.length; i++) {
            assertEquals(i >= 4096 && i < 12288 ? 0x5a : 0, data[i] & 0xff, "byte " + i);
        }
        CliRun r = CliRun.of("io", "-c", "read -P 0x5a 4k 8k", "-c", "read -P 0 0 4k", f.toString());
        assertEquals(0, r.rc(), r.out() + r.err());
    }
}
