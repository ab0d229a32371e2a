package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlockException;
import io.vblk.block.BlockOptions;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ImageOpenerTest {
    @TempDir
    Path dir;

    private static ImageSpec spec(String... kv) throws CliException {
        ImageSpec s = new ImageSpec();
        for (int i = 0; i < kv.length - 1; i += 2) {
            assertTrue(s.accept(kv[i], kv[i + 1], true), kv[i]);
        }
        s.filename = kv[kv.length - 1];
        return s;
    }

    @Test
    void rawWithCacheNoneAndNativeAioBuildsRawOverFile() throws Exception {
        BlockOptions o = ImageOpener.toBlockOptions(spec("f", "raw", "t", "none", "i", "native", "r", null, "/x.img"));
        assertEquals("raw", o.get("driver"));
        assertEquals("file", o.get("file.driver"));
        assertEquals("/x.img", o.get("file.filename"));
        assertEquals("native", o.get("file.aio"));
        assertEquals("on", o.get("cache.direct"));
        assertEquals("off", o.get("cache.no-flush"));
        assertEquals("on", o.get("read-only"));
        assertFalse(o.has("write-cache"));
        assertFalse(o.has("discard"), "qemu-img style: discards are ignored");
        ImageSpec io = spec("f", "raw", "/x.img");
        io.discardUnmap = true;
        assertEquals("unmap", ImageOpener.toBlockOptions(io).get("discard"), "qemu-io style: BDRV_O_UNMAP");
    }

    @Test
    void cacheModesMapLikeQemu() throws Exception {
        BlockOptions wt = ImageOpener.toBlockOptions(spec("f", "raw", "t", "writethrough", "/x"));
        assertEquals("off", wt.get("cache.direct"));
        assertEquals("off", wt.get("write-cache"));
        BlockOptions unsafe = ImageOpener.toBlockOptions(spec("f", "raw", "t", "unsafe", "/x"));
        assertEquals("on", unsafe.get("cache.no-flush"));
        BlockOptions ds = ImageOpener.toBlockOptions(spec("f", "raw", "t", "directsync", "/x"));
        assertEquals("on", ds.get("cache.direct"));
        assertEquals("off", ds.get("write-cache"));
        assertThrows(CliException.class, () -> spec("t", "bogus", "/x"));
    }

    @Test
    void nativeAioWithoutDirectIsRefused() throws Exception {
        CliException e = assertThrows(CliException.class, () -> ImageOpener.toBlockOptions(spec("f", "raw", "i", "native", "/x")));
        assertTrue(e.getMessage().contains("cache.direct=on"), e.getMessage());
        assertThrows(CliException.class, () -> spec("i", "io_uring", "/x"));
    }

    @Test
    void nullAndMemoryTakeASize() throws Exception {
        BlockOptions o = ImageOpener.toBlockOptions(spec("f", "null", "1G"));
        assertEquals("null", o.get("driver"));
        assertEquals(String.valueOf(1L << 30), o.get("size"));
        assertEquals("memory", ImageOpener.toBlockOptions(spec("f", "memory", "64k")).get("driver"));
        CliException e = assertThrows(CliException.class, () -> ImageOpener.toBlockOptions(spec("f", "null", "/some/file")));
        assertTrue(e.getMessage().contains("takes a size"), e.getMessage());
    }

    @Test
    void probingFindsQcow2MagicElseRaw() throws Exception {
        Path q = dir.resolve("a.qcow2");
        Files.write(q, new byte[] {'Q', 'F', 'I', (byte) 0xfb, 0, 0, 0, 3});
        Path r = dir.resolve("a.raw");
        Files.write(r, new byte[512]);
        Path empty = dir.resolve("empty");
        Files.write(empty, new byte[0]);
        assertEquals("qcow2", ImageOpener.probeFormat(q.toString()));
        assertEquals("raw", ImageOpener.probeFormat(r.toString()));
        assertEquals("raw", ImageOpener.probeFormat(empty.toString()));
        BlockException e = assertThrows(BlockException.class, () -> ImageOpener.probeFormat(dir.resolve("nope").toString()));
        assertTrue(e.getMessage().contains("No such file or directory"), e.getMessage());
        assertThrows(BlockException.class, () -> ImageOpener.probeFormat(dir.toString()));
        assertEquals("raw", ImageOpener.toBlockOptions(spec(r.toString())).get("driver"));
    }

    @Test
    void imageOptsAreParsedAndExclusiveWithFormat() throws Exception {
        ImageSpec s = spec("image-opts", null, "driver=memory,size=1M");
        BlockOptions o = ImageOpener.toBlockOptions(s);
        assertEquals("memory", o.get("driver"));
        assertEquals("1M", o.get("size"));
        ImageSpec both = spec("image-opts", null, "f", "raw", "driver=memory,size=1M");
        assertThrows(CliException.class, () -> ImageOpener.toBlockOptions(both));
    }

    @Test
    void openedImageReadsAndWrites() throws Exception {
        try (OpenedImage img = ImageOpener.open(spec("f", "memory", "1M"), "t")) {
            assertEquals(1 << 20, img.ctx().run(() -> (int) img.node().getLength()));
        }
    }
}
