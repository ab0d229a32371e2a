package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** The raw format driver: pass-through with an offset/size window (raw-format.c). */
class RawDriverTest extends BlockTestSupport {
    @Test
    void windowShiftsRequestsAndConfinesThem() throws Exception {
        BlockNode n = open("driver=raw,offset=8192,size=16384,file.driver=memory,file.size=64K");
        BlockNode file = n.file().node();
        assertEquals(16384, n.getLength());
        byte[] data = patternBytes(4096, 1);
        assertEquals(0, write(n, 0, data, 0));
        assertArrayEquals(data, memory(n).snapshot(8192, 4096));
        assertArrayEquals(data, read(n, 0, 4096));
        assertEquals(-Errno.ENOSPC, write(n, 16000, new byte[1000], 0), "writes past the window");
        assertArrayEquals(new byte[1000], memory(n).snapshot(8192 + 16384, 1000), "nothing leaked past the window");
        assertEquals(-Errno.ENOTSUP, run(() -> n.truncate(32768, false, PreallocMode.OFF, 0)));
        assertEquals(0, run(() -> n.pwriteZeroes(0, 4096, 0)));
        assertArrayEquals(new byte[4096], memory(n).snapshot(8192, 4096));
        assertEquals(65536, file.getLength());
    }

    @Test
    void windowMustFitTheFile() {
        BlockException e = assertThrows(BlockException.class,
                () -> open("driver=raw,offset=60K,size=8K,file.driver=memory,file.size=64K"));
        assertEquals(Errno.EINVAL, e.errno());
    }

    @Test
    void plainRawPassesEverythingThrough() throws Exception {
        BlockNode n = open("driver=raw,file.driver=memory,file.size=64K,file.align=512");
        assertEquals(512, n.limits().requestAlignment);
        byte[] data = patternBytes(1000, 3);
        assertEquals(0, write(n, 100, data, 0));
        assertArrayEquals(data, memory(n).snapshot(100, 1000));
        assertEquals(0, run(() -> n.truncate(128 * 1024, false, PreallocMode.OFF, 0)));
        assertEquals(128 * 1024, n.getLength());
    }
}
