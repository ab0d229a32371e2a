package io.vblk.virtio.vhost;

import io.vblk.block.BlockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

/**
 * A vhost-user export: listens on a unix socket and serves one front-end connection at a time
 * with a {@link VhostUserConnection} on its own thread; when that connection ends (EOF, error or
 * protocol violation) the next one is accepted. QEMU's block/export/vhost-user-blk-server.c
 * together with util/vhost-user-server.c (vhost_user_server_start / vu_accept).
 */
public final class VhostUserServer implements AutoCloseable {
    private final Path path;
    private final VhostUserBackend backend;
    private final Consumer<String> log;
    private final UnixSocket listener;
    private final Thread thread;
    private volatile boolean closing;
    private volatile VhostUserConnection current;   // the connection being served, or null
    private volatile int connections;               // served so far (written by the server thread)

    private VhostUserServer(Path path, VhostUserBackend backend, Consumer<String> log) throws BlockException {
        this.path = path;
        this.backend = backend;
        this.log = log;
        this.listener = UnixSocket.listen(path, 1);
        this.thread = new Thread(this::serve, "vhost-user-server");
        this.thread.setDaemon(true);
    }

    /** Binds {@code path} and starts accepting. */
    public static VhostUserServer start(Path path, VhostUserBackend backend, Consumer<String> log) throws BlockException {
        VhostUserServer s = new VhostUserServer(path, backend, log);
        s.thread.start();
        log.accept("vhost-user: listening on " + path);
        return s;
    }

    public Path path() { return path; }

    /** Number of connections accepted so far. */
    public int connections() { return connections; }

    private void serve() {
        while (!closing) {
            UnixSocket c;
            try {
                c = listener.accept();
            } catch (BlockException e) {
                if (!closing) log.accept("vhost-user: accept failed: " + e.getMessage());
                return;
            }
            connections++;
            log.accept("vhost-user: front-end connected (connection " + connections + ")");
            VhostUserConnection conn = new VhostUserConnection(c, backend, log);
            current = conn;
            if (closing) conn.shutdown();
            conn.run();
            current = null;
            log.accept("vhost-user: connection " + connections + " ended");
        }
    }

    /** Stops accepting, ends the current connection (its rings are stopped and drained), removes the socket. */
    @Override
    public void close() {
        closing = true;
        listener.shutdown();
        VhostUserConnection c = current;
        if (c != null) c.shutdown();
        try {
            thread.join(30_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        listener.close();
        try {
            Files.deleteIfExists(path);
        } catch (java.io.IOException e) {
            log.accept("vhost-user: could not remove " + path + ": " + e.getMessage());
        }
    }
}
