package io.vblk.aio.file;

import static io.vblk.aio.AioTestSupport.patternBytes;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vblk.aio.AioTestSupport;
import io.vblk.aio.IoThreads;
import io.vblk.block.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockOptions;
import io.vblk.block.drivers.DebugDriver;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The debug driver's power-loss overlay over a real, growable file: a write past the end of the
 * file is part of the node while pending (its length grows) and reaches the file at the flush,
 * instead of being cut at the file's old length.
 */
class DebugPowerLossOverFileTest {
    @TempDir Path dir;

    @Test
    void flushedWritePastTheEndGrowsTheFile() throws Exception {
        Path f = dir.resolve("grow.img");
        Files.write(f, patternBytes(0, 8192));
        try (AioContext ctx = IoThreads.start("powerloss-test")) {
            BlockNode n = BlockNode.open(BlockOptions.parse(
                    "driver=debug,power-loss=on,file.driver=file,file.filename=" + f + ",file.aio=threads"));
            try {
                byte[] tail = patternBytes(70000, 12288);
                assertEquals(0, AioTestSupport.write(ctx, n, 16384, tail, 0));
                assertEquals(8192, Files.size(f), "nothing reached the file before the flush");
                assertEquals(0, ctx.run(n::flush));
                byte[] onDisk = Files.readAllBytes(f);
                assertEquals(16384 + 12288, onDisk.length, "the flush grew the file");
                assertArrayEquals(tail, Arrays.copyOfRange(onDisk, 16384, 16384 + 12288));
                assertArrayEquals(new byte[8192], Arrays.copyOfRange(onDisk, 8192, 16384), "the gap reads as zeros");

                // an unflushed write past the end is lost by the crash: the file never sees it
                assertEquals(0, AioTestSupport.write(ctx, n, 65536, patternBytes(1, 4096), 0));
                assertEquals(1, ((DebugDriver) n.driver()).crash());
                assertEquals(16384 + 12288, Files.size(f));
            } finally {
                ctx.run(n::close);
            }
        }
    }
}
