package io.vblk.qcow2;

import static org.junit.jupiter.api.Assertions.*;

import io.vblk.block.BlockException;
import io.vblk.block.Errno;
import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/** Hostile images through the driver: each gets a one-line error (or EIO on the request), never a crash. */
class Qcow2HostileImageTest {
    static final int CS = 65536;

    private static TestImage image() throws BlockException {
        TestImage t = new TestImage(4L << 20);
        t.create(new Qcow2Creator.Options().size(64 << 20).clusterSize(CS));
        return t;
    }

    private static String openError(TestImage t) {
        BlockException e = assertThrows(BlockException.class, () -> t.open(""));
        assertFalse(e.getMessage().contains("\n"));
        return e.getMessage();
    }

    @Test
    void refcountTableEntryPointingIntoTheTableIsRefused() throws Exception {
        try (TestImage t = image()) {
            Qcow2Layout.putBE64(t.rawAddress() + CS, CS); // reftable[0] = the reftable itself
            assertTrue(openError(t).contains("points into the refcount table"));
        }
    }

    @Test
    void refcountBlockOutsideTheFileIsRefused() throws Exception {
        try (TestImage t = image()) {
            Qcow2Layout.putBE64(t.rawAddress() + CS + 8, 1L << 40);
            assertTrue(openError(t).contains("outside the image file"));
        }
    }

    @Test
    void l2TableBeyondTheFileAndUnalignedAreRefused() throws Exception {
        try (TestImage t = image()) {
            Qcow2Layout.putBE64(t.rawAddress() + 3L * CS, (1L << 40) | Qcow2Constants.QCOW_OFLAG_COPIED);
            assertTrue(openError(t).contains("beyond the end of the file"));
            Qcow2Layout.putBE64(t.rawAddress() + 3L * CS, (5L * CS + 512) | Qcow2Constants.QCOW_OFLAG_COPIED);
            assertTrue(openError(t).contains("not cluster aligned"));
        }
    }

    @Test
    void l1TableBeyondTheFileIsRefused() throws Exception {
        try (TestImage t = image()) {
            byte[] h = t.raw(0, 72);
            ByteBuffer.wrap(h).putLong(40, 1L << 30);
            t.rawWrite(0, h);
            assertTrue(openError(t).contains("L1 table"), openError(t));
        }
    }

    @Test
    void hugeL1SizeIsRefusedWithoutAllocating() throws Exception {
        try (TestImage t = image()) {
            byte[] h = t.raw(0, 72);
            ByteBuffer.wrap(h).putInt(36, 0x7fffffff);
            t.rawWrite(0, h);
            assertTrue(openError(t).contains("too large"));
        }
    }

    @Test
    void compressedDescriptorBeyondTheFileFailsTheReadWithEio() throws Exception {
        try (TestImage t = image()) {
            t.open("");
            assertEquals(0, t.run(() -> TestImage.write(t.q, 0, new byte[512])));
            t.closeImage();
            long l2 = Qcow2Layout.l1Offset(Qcow2Layout.getBE64(t.rawAddress() + 3L * CS));
            Qcow2Layout.putBE64(t.rawAddress() + l2 + 8, Qcow2Constants.QCOW_OFLAG_COMPRESSED | Qcow2Layout.compressedDescriptor(1L << 36, 1000, 16));
            t.open("");
            int[] r = new int[1];
            t.run(() -> {
                TestImage.read(t.q, CS, 4096, r);
                return 0;
            });
            assertEquals(-Errno.EIO, r[0]);
            t.run(() -> {
                TestImage.read(t.q, 0, 512, r);
                return 0;
            });
            assertEquals(0, r[0], "other clusters still read");
            t.closeImage();
        }
    }
}
