// pgjdbc (Debian's libpostgresql-jdbc-java) through rsproxy, driven by test_jdbc.py.
//
// Usage: java -cp <classes>:/usr/share/java/postgresql.jar JdbcClient <jdbc-url> <scenario>
// Each scenario checks its own results and prints "PASS <scenario>" and exits 0, or prints
// the failure and exits 1. Compiled at test time with javac, so a broken JDK fails the test.

import java.io.ByteArrayOutputStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;

public final class JdbcClient {
    private static void check(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what);
        }
    }

    private static void expectState(SQLException e, String state) {
        if (!state.equals(e.getSQLState())) {
            throw new AssertionError("expected SQLSTATE " + state + ", got " + e.getSQLState()
                                     + ": " + e.getMessage());
        }
    }

    private static long scalarLong(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            check(rs.next(), "no row for " + sql);
            return rs.getLong(1);
        }
    }

    static void queries(Connection c) throws Exception {
        try (Statement s = c.createStatement()) {
            try (ResultSet rs = s.executeQuery("SELECT 1, 'two', 3.5::float8, NULL::text")) {
                check(rs.next(), "row");
                check(rs.getInt(1) == 1 && rs.getString(2).equals("two"), "values");
                check(rs.getDouble(3) == 3.5 && rs.getString(4) == null, "values 2");
            }
            // Several statements in one simple query.
            s.execute("SELECT 1; SELECT 2");
            check(s.getMoreResults(), "second result");
        }
        // A fetch size outside autocommit uses a portal with row limits (PortalSuspended).
        c.setAutoCommit(false);
        try (Statement s = c.createStatement()) {
            s.setFetchSize(100);
            long sum = 0;
            int n = 0;
            try (ResultSet rs = s.executeQuery("SELECT g FROM generate_series(1, 25000) g")) {
                while (rs.next()) {
                    sum += rs.getLong(1);
                    n++;
                }
            }
            check(n == 25000 && sum == 25000L * 25001L / 2, "cursor fetch " + n + " " + sum);
        }
        c.commit();
        c.setAutoCommit(true);
    }

    static void transactions(Connection c) throws Exception {
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TEMP TABLE j_tx (id int PRIMARY KEY)");
        }
        c.setAutoCommit(false);
        try (Statement s = c.createStatement()) {
            s.execute("INSERT INTO j_tx VALUES (1)");
            try {
                s.execute("INSERT INTO j_tx VALUES (1)");
                throw new AssertionError("duplicate key accepted");
            } catch (SQLException e) {
                expectState(e, "23505");
            }
            try {
                s.execute("SELECT 1");
                throw new AssertionError("statement accepted in an aborted transaction");
            } catch (SQLException e) {
                expectState(e, "25P02");
            }
            c.rollback();
            check(scalarLong(c, "SELECT count(*) FROM j_tx") == 0, "rolled back");
            s.execute("INSERT INTO j_tx VALUES (2)");
            java.sql.Savepoint sp = c.setSavepoint();
            try {
                s.execute("SELECT 1/0");
                throw new AssertionError("division by zero accepted");
            } catch (SQLException e) {
                expectState(e, "22012");
            }
            c.rollback(sp);
            s.execute("INSERT INTO j_tx VALUES (3)");
            c.commit();
        }
        c.setAutoCommit(true);
        check(scalarLong(c, "SELECT sum(id) FROM j_tx") == 5, "committed rows");
    }

    static void prepared(Connection c) throws Exception {
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TEMP TABLE j_prep (id int, name text)");
        }
        try (PreparedStatement ps = c.prepareStatement("SELECT ?::int * 2, upper(?)")) {
            for (int i = 0; i < 10; i++) {
                ps.setInt(1, i);
                ps.setString(2, "v" + i);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "row");
                    check(rs.getInt(1) == i * 2 && rs.getString(2).equals("V" + i), "value");
                }
            }
        }
        // prepareThreshold=1 in the URL: named server-side statements from the first use.
        check(scalarLong(c, "SELECT count(*) FROM pg_prepared_statements") > 0,
              "no server-side prepared statement");
        // A batch: many Bind/Execute pairs before one Sync (pipelined by the driver).
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO j_prep VALUES (?, ?)")) {
            for (int i = 0; i < 1000; i++) {
                ps.setInt(1, i);
                ps.setString(2, "name " + i);
                ps.addBatch();
            }
            int[] counts = ps.executeBatch();
            check(counts.length == 1000, "batch size");
        }
        check(scalarLong(c, "SELECT count(*) FROM j_prep") == 1000, "batch rows");
        // A failing batch reports the error and leaves the connection usable.
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO j_prep VALUES (?::int, 'x')")) {
            ps.setString(1, "1");
            ps.addBatch();
            ps.setString(1, "not a number");
            ps.addBatch();
            ps.executeBatch();
            throw new AssertionError("bad batch accepted");
        } catch (BatchUpdateException e) {
            check(e.getNextException() == null || "22P02".equals(e.getNextException().getSQLState())
                  || "22P02".equals(e.getSQLState()), "batch error state " + e.getSQLState());
        }
        check(scalarLong(c, "SELECT 42") == 42, "usable after batch error");
    }

    static void cancel(Connection c, String url) throws Exception {
        final Statement s = c.createStatement();
        AtomicReference<Throwable> err = new AtomicReference<>();
        // Cancel once the query runs upstream (seen from a second session), never before.
        Thread t = new Thread(() -> {
            try (Connection watcher = DriverManager.getConnection(url)) {
                long deadline = System.nanoTime() + 20_000_000_000L;
                while (scalarLong(watcher, "SELECT count(*) FROM pg_stat_activity WHERE "
                                  + "query = 'SELECT pg_sleep(60)' AND state = 'active'") == 0) {
                    check(System.nanoTime() < deadline, "pg_sleep never started");
                    Thread.sleep(50);
                }
                s.cancel();
            } catch (Throwable e) {
                err.set(e);
            }
        });
        t.start();
        long t0 = System.nanoTime();
        try {
            s.execute("SELECT pg_sleep(60)");
            throw new AssertionError("pg_sleep was not cancelled");
        } catch (SQLException e) {
            expectState(e, "57014");
        }
        long ms = (System.nanoTime() - t0) / 1000000;
        t.join();
        check(err.get() == null, "cancel thread: " + err.get());
        check(ms < 11000, "cancel took " + ms + " ms");
        s.close();
        check(scalarLong(c, "SELECT 9") == 9, "usable after cancel");
    }

    static void copy(Connection c) throws Exception {
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TEMP TABLE j_copy (id int, txt text)");
        }
        CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 5000; i++) {
            sb.append(i).append('\t').append("línea ").append(i).append('\n');
        }
        long in = cm.copyIn("COPY j_copy FROM STDIN", new StringReader(sb.toString()));
        check(in == 5000, "copy in count " + in);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        long n = cm.copyOut("COPY (SELECT * FROM j_copy ORDER BY id) TO STDOUT", out);
        check(n == 5000, "copy out count " + n);
        check(out.toString(StandardCharsets.UTF_8).equals(sb.toString()), "copy out bytes");
        try {
            cm.copyIn("COPY j_copy FROM STDIN", new StringReader("1\tx\nbad\ty\n"));
            throw new AssertionError("bad copy accepted");
        } catch (SQLException e) {
            expectState(e, "22P02");
        }
        check(scalarLong(c, "SELECT count(*) FROM j_copy") == 5000, "failed copy loaded rows");
    }

    static void unicode(Connection c) throws Exception {
        try (Statement s = c.createStatement()) {
            s.execute("CREATE TEMP TABLE \"jdbc_tablé_表\" (\"列_é\" text)");
        }
        String[] vals = {"Ελληνικά", "עברית", "😀 grin", "ascii"};
        try (PreparedStatement ps = c.prepareStatement(
                 "INSERT INTO \"jdbc_tablé_表\" VALUES (?)")) {
            for (String v : vals) {
                ps.setString(1, v);
                ps.executeUpdate();
            }
        }
        List<String> got = new ArrayList<>();
        try (Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT \"列_é\" FROM \"jdbc_tablé_表\"")) {
            check(rs.getMetaData().getColumnName(1).equals("列_é"), "column name");
            while (rs.next()) {
                got.add(rs.getString(1));
            }
        }
        check(got.equals(List.of(vals)), "values " + got);
    }

    static void notifications(Connection c, String url) throws Exception {
        try (Statement s = c.createStatement()) {
            s.execute("LISTEN j_chan");
        }
        try (Connection other = DriverManager.getConnection(url);
             Statement s = other.createStatement()) {
            s.execute("NOTIFY j_chan, 'from jdbc ✓'");
        }
        PGNotification[] got = c.unwrap(PGConnection.class).getNotifications(10000);
        check(got != null && got.length == 1, "notification count");
        check(got[0].getName().equals("j_chan") && got[0].getParameter().equals("from jdbc ✓"),
              "notification " + got[0].getName() + " " + got[0].getParameter());
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        String scenario = args[1];
        try (Connection c = DriverManager.getConnection(url)) {
            switch (scenario) {
            case "queries": queries(c); break;
            case "transactions": transactions(c); break;
            case "prepared": prepared(c); break;
            case "cancel": cancel(c, url); break;
            case "copy": copy(c); break;
            case "unicode": unicode(c); break;
            case "notifications": notifications(c, url); break;
            default: throw new IllegalArgumentException("unknown scenario " + scenario);
            }
        } catch (Throwable e) {
            System.out.println("FAIL " + scenario + ": " + e);
            e.printStackTrace(System.out);
            System.exit(1);
        }
        System.out.println("PASS " + scenario);
    }
}
