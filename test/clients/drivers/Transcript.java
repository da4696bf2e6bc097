// Runs a transcript of SQL steps with pgJDBC and prints what the application would see, as JSON,
// so that a run against PostgreSQL and one through dbgate compare. Java's source launcher runs it.
import java.sql.*;
import java.util.*;
import java.util.regex.*;

public class Transcript {
  static String q(String s) {
    if (s == null) return "null";
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }

  public static void main(String[] args) throws Exception {
    // One step per line on stdin: the SQL, then a tab and the parameters separated by tabs.
    Scanner in = new Scanner(System.in, "UTF-8").useDelimiter("\n");
    List<String> out = new ArrayList<>();
    try (Connection c = DriverManager.getConnection(System.getenv("DBGATE_JDBC_URL"), System.getenv("DBGATE_USER"), System.getenv("DBGATE_PASSWORD"))) {
      while (in.hasNext()) {
        String line = in.next();
        if (line.isEmpty()) continue;
        String[] parts = line.split("\t", -1);
        String sql = parts[0].replaceAll("\\$\\d+", "?");
        try (PreparedStatement ps = c.prepareStatement(sql)) {
          for (int i = 1; i < parts.length; i++) ps.setObject(i, parts[i], Types.OTHER);
          if (ps.execute()) {
            try (ResultSet rs = ps.getResultSet()) {
              ResultSetMetaData md = rs.getMetaData();
              StringBuilder cols = new StringBuilder("[");
              for (int i = 1; i <= md.getColumnCount(); i++) cols.append(i > 1 ? "," : "").append("[" + q(md.getColumnLabel(i)) + "," + q(md.getColumnTypeName(i)) + "]");
              StringBuilder rows = new StringBuilder("[");
              boolean first = true;
              while (rs.next()) {
                rows.append(first ? "[" : ",[");
                first = false;
                for (int i = 1; i <= md.getColumnCount(); i++) rows.append(i > 1 ? "," : "").append(q(rs.getString(i)));
                rows.append("]");
              }
              out.add("{\"columns\":" + cols + "],\"rows\":" + rows + "]}");
            }
          } else {
            out.add("{\"updateCount\":" + ps.getUpdateCount() + "}");
          }
        } catch (SQLException e) {
          String pos = "null";
          String msg = e.getMessage();
          if (e instanceof org.postgresql.util.PSQLException && ((org.postgresql.util.PSQLException) e).getServerErrorMessage() != null) {
            org.postgresql.util.ServerErrorMessage m = ((org.postgresql.util.PSQLException) e).getServerErrorMessage();
            pos = String.valueOf(m.getPosition());
            msg = m.getMessage();
          }
          out.add("{\"error\":{\"code\":" + q(e.getSQLState()) + ",\"message\":" + q(msg) + ",\"position\":" + pos + "}}");
        }
      }
    }
    System.out.println("[" + String.join(",", out) + "]");
  }
}
