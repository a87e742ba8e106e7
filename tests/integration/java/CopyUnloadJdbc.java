// pgjdbc (Debian's libpostgresql-jdbc-java) running COPY and UNLOAD through rsproxy, driven by
// tests/integration/test_copy_clients.py and test_copy_policy.py.
//
// Usage: java -cp <classes>:/usr/share/java/postgresql.jar CopyUnloadJdbc <jdbc-url> <script>
//
// The script is a list of steps separated by lines holding only "----". The first line of a
// step is its verb, the rest (possibly several lines) its SQL:
//   exec      Statement.execute(sql)                  (pgjdbc: Parse/Bind/Execute by default)
//   prep      PreparedStatement.execute(), no params  (a named server-side statement with
//             prepareThreshold=1, run twice to reuse it when the verb is "prep2")
//   prep2     as prep, executed twice on the same PreparedStatement
//   query     Statement.executeQuery(sql), rows printed
//   batch     Statement.addBatch for each line of the SQL, then executeBatch (one Sync)
//   begin / commit / rollback   autocommit off / commit / rollback (no SQL)
// For each step it prints exactly one line "STEP <n> OK <detail>" or "STEP <n> ERR <sqlstate>
// <message on one line>", preceded for query steps by "ROW <n> <col>\t<col>..." lines and for
// every warning (Redshift's INFO notices) by "NOTICE <n> <message>". The assertions live in
// the Python tests; this program never decides what is right. Exit status 0 unless the
// connection itself could not be made or a step threw something other than SQLException.

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.SQLWarning;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;

public final class CopyUnloadJdbc {
    private static String oneLine(String s) {
        return s == null ? "" : s.replace('\r', ' ').replace('\n', ' ');
    }

    private static void warnings(int n, SQLWarning w) {
        for (; w != null; w = w.getNextWarning()) {
            System.out.println("NOTICE " + n + " " + oneLine(w.getMessage()));
        }
    }

    private static String error(SQLException e) {
        // A batch reports the statement's own error as the next exception.
        SQLException cause = e;
        if (e instanceof BatchUpdateException && e.getNextException() != null) {
            cause = e.getNextException();
        }
        return "ERR " + cause.getSQLState() + " " + oneLine(cause.getMessage());
    }

    private static String run(Connection c, int n, String verb, String sql) throws SQLException {
        switch (verb) {
        case "begin":
            c.setAutoCommit(false);
            return "OK begin";
        case "commit":
            c.commit();
            c.setAutoCommit(true);
            return "OK commit";
        case "rollback":
            c.rollback();
            c.setAutoCommit(true);
            return "OK rollback";
        case "exec":
            try (Statement s = c.createStatement()) {
                s.execute(sql);
                warnings(n, s.getWarnings());
                return "OK " + s.getUpdateCount();
            }
        case "prep":
        case "prep2":
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                int times = verb.equals("prep2") ? 2 : 1;
                StringBuilder sb = new StringBuilder("OK");
                for (int i = 0; i < times; i++) {
                    ps.execute();
                    warnings(n, ps.getWarnings());
                    ps.clearWarnings();
                    sb.append(' ').append(ps.getUpdateCount());
                }
                return sb.toString();
            }
        case "query":
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
                ResultSetMetaData md = rs.getMetaData();
                int rows = 0;
                while (rs.next()) {
                    StringBuilder sb = new StringBuilder("ROW " + n + " ");
                    for (int i = 1; i <= md.getColumnCount(); i++) {
                        if (i > 1) {
                            sb.append('\t');
                        }
                        String v = rs.getString(i);
                        sb.append(v == null ? "\\N" : v);
                    }
                    System.out.println(sb);
                    rows++;
                }
                return "OK " + rows;
            }
        case "batch":
            try (Statement s = c.createStatement()) {
                for (String line : sql.split("\n")) {
                    if (!line.isBlank()) {
                        s.addBatch(line);
                    }
                }
                int[] counts = s.executeBatch();
                return "OK batch " + counts.length;
            }
        default:
            throw new IllegalArgumentException("unknown verb " + verb);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        String text = new String(Files.readAllBytes(Paths.get(args[1])), StandardCharsets.UTF_8);
        List<String[]> steps = new ArrayList<>();
        for (String block : text.split("\n----\n", -1)) {
            if (block.isBlank()) {
                continue;
            }
            int nl = block.indexOf('\n');
            String verb = (nl < 0 ? block : block.substring(0, nl)).trim();
            String sql = nl < 0 ? "" : block.substring(nl + 1);
            steps.add(new String[] {verb, sql});
        }
        try (Connection c = DriverManager.getConnection(url)) {
            for (int i = 0; i < steps.size(); i++) {
                String line;
                try {
                    line = run(c, i, steps.get(i)[0], steps.get(i)[1]);
                } catch (SQLException e) {
                    line = error(e);
                }
                System.out.println("STEP " + i + " " + line);
            }
        }
        System.out.println("DONE");
    }
}
